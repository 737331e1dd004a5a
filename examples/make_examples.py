"""Regenerate the bundled Romanian sample in examples/ (the files are committed; this documents them).

    .venv/bin/python examples/make_examples.py --samples SAMPLES

Real data is copied from SAMPLES, a folder of real published rows laid out as README.md lists them
(see README.md for attribution); everything else is written
here, deterministically (fixed seeds, gzip mtime 0), in the published layouts so that
``lrltool fetch <source> --lang ron --input examples/<source>`` reads it exactly as a real download.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import random
import shutil
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------------
# ConceptNet: Romanian rows written in the shape of the 5.7 dump. An entry is "start | end"; a node may
# carry a POS and a sense (``bancă/n/wikt/en_1``); ``/c/xx/...`` makes a node of another language.

# fmt: off
RO_TRIPLES: dict[str, list[str]] = {
    "Antonym": [
        "cald/a | rece/a", "mare/a | mic/a", "zi/n | noapte/n", "bun/a | rău/a", "sus | jos",
        "alb/a | negru/a", "vechi/a | nou/a", "lung/a | scurt/a", "greu/a | ușor/a", "rapid | lent",
        "deschis | închis", "bogat/a | sărac/a", "vesel/a | trist/a", "început/n | sfârșit/n",
    ],
    "DerivedFrom": [
        "pădurar/n | pădure/n", "grădinar/n | grădină/n", "brutărie/n | brutar/n", "scriitor/n | scrie/v",
        "cititor/n | citi/v", "învățător/n | învăța/v", "pescar/n | pește/n", "fierar/n | fier/n",
        "lăptar/n | lapte/n", "căsuță/n | casă/n", "pisicuță/n | pisică/n", "frumusețe/n | frumos/a",
        "bunătate/n | bun/a", "prietenie/n | prieten/n", "tinerețe/n | tânăr/a",
    ],
    "EtymologicallyDerivedFrom": [
        "apă | /c/la/aqua", "lună | /c/la/luna", "pâine | /c/la/panis", "câine | /c/la/canis",
        "om | /c/la/homo", "frate | /c/la/frater", "soră | /c/la/soror", "lup | /c/la/lupus",
        "cal | /c/la/caballus", "foc | /c/la/focus", "ochi | /c/la/oculus", "lapte | /c/la/lac",
    ],
    "EtymologicallyRelatedTo": [
        "noapte | /c/it/notte", "noapte | /c/fr/nuit", "lapte | /c/it/latte", "lapte | /c/fr/lait",
        "mână | /c/it/mano", "mână | /c/es/mano", "pește | /c/it/pesce", "vin | /c/fr/vin",
        "vin | /c/it/vino", "soare | /c/fr/soleil", "cer | /c/it/cielo", "timp | /c/fr/temps",
    ],
    "FormOf": [
        "câini/n | câine/n", "case/n | casă/n", "copii/n | copil/n", "mere/n | măr/n", "flori/n | floare/n",
        "cărți/n | carte/n", "oameni/n | om/n", "zile/n | zi/n", "frumoasă/a | frumos/a", "mari/a | mare/a",
        "mâncat/v | mânca/v", "scris/v | scrie/v", "mergea/v | merge/v", "ochii/n | ochi/n",
    ],
    "PartOf": [
        "deget | mână", "roată | mașină", "frunză | copac", "ușă | casă", "acoperiș | casă",
        "ecran | telefon", "tastatură | calculator", "petală | floare", "pagină | carte", "inimă | corp",
        "aripă | pasăre", "coadă | pisică", "volan | mașină",
    ],
    "HasA": [
        "pasăre | aripi", "pisică | gheare", "copac | rădăcini", "casă | ferestre", "mașină | motor",
        "carte | pagini", "pește | solzi", "câine | coadă", "bicicletă | pedale", "masă | picioare",
        "floare | petale", "oraș | străzi",
    ],
    "UsedFor": [
        "cuțit | tăiat", "pix | scris", "pat | dormit", "lingură | mâncat supă",
        "umbrelă | protecție de ploaie", "cheie | deschis ușa", "telefon | vorbit", "mașină | călătorit",
        "bani | cumpărat", "săpun | spălat", "foarfecă | tăiat hârtie", "scaun | stat jos",
        "cuptor | copt pâine", "hartă | orientare",
    ],
    "AtLocation": [
        "pește | apă", "carte | bibliotecă", "pâine | brutărie", "vacă | fermă", "doctor | spital",
        "elev | școală", "avion | aeroport", "haine | dulap", "mâncare | frigider", "stea | cer",
        "nisip | plajă", "tren | gară", "bani | bancă/n/wikt/en_1", "pat | dormitor",
    ],
    "Causes": [
        "ploaie | inundație", "foc | fum", "frig | răceală", "alergat | oboseală", "soare | căldură",
        "râs | bucurie", "vânt | valuri", "virus | boală", "zahăr | carii", "cutremur | pagube",
        "minciună | neîncredere", "muncă | oboseală",
    ],
    "CausesDesire": [
        "foame | mâncat", "sete | băut apă", "oboseală | dormit", "frig | aprins focul", "căldură | înotat",
        "plictiseală | citit o carte", "muzică | dansat", "ploaie | stat în casă",
        "singurătate | sunat un prieten", "durere | mers la doctor",
    ],
    "MadeOf": [
        "masă | lemn", "fereastră | sticlă", "pâine | făină", "brânză | lapte", "vin | struguri",
        "cămașă | bumbac", "pantof | piele", "casă | cărămidă", "inel | aur", "hârtie | lemn",
        "unt | smântână", "pulover | lână",
    ],
    "ReceivesAction": [
        "carte | citită", "mâncare | gătită", "scrisoare | trimisă", "ușă | deschisă", "cântec | cântat",
        "mașină | condusă", "haine | spălate", "pâine | coaptă", "minge | aruncată", "casă | construită",
    ],
    "HasSubevent": [
        "mâncat | mestecat", "dormit | visat", "citit | întors pagina", "gătit | tăiat legume",
        "nuntă | dans", "înotat | mișcat brațele", "alergat | transpirat", "petrecere | muzică",
        "examen | scris răspunsuri", "râs | zâmbit",
    ],
    "HasFirstSubevent": [
        "dormit | închis ochii", "gătit | aprins aragazul", "citit | deschis cartea",
        "condus | pornit motorul", "mâncat | pus masa", "scris | luat pixul", "călătorit | cumpărat bilet",
        "înotat | intrat în apă", "plecat | închis ușa", "spălat vase | dat drumul la apă",
    ],
    "HasLastSubevent": [
        "mâncat | spălat vasele", "dormit | trezit", "gătit | servit masa", "citit | închis cartea",
        "condus | parcat", "călătorit | despachetat", "examen | aflat nota", "spectacol | aplauze",
        "scris | semnat", "cumpărături | plătit",
    ],
    "HasPrerequisite": [
        "condus | permis de conducere", "gătit | ingrediente", "citit | lumină", "cumpărat | bani",
        "zburat | bilet de avion", "înotat | apă", "telefonat | telefon", "votat | vârsta de 18 ani",
        "fotografiat | aparat foto", "pictat | pensulă",
    ],
    "HasProperty": [
        "zăpadă | alb", "soare | fierbinte", "lămâie | acru", "miere | dulce", "gheață | rece",
        "munte | înalt", "elefant | mare", "șoarece | mic", "cuțit | ascuțit", "pernă | moale",
        "piatră | tare", "cer | albastru", "iarbă | verde", "noapte | întunecat",
    ],
    "MotivatedByGoal": [
        "muncit | câștigat bani", "învățat | promovat examenul", "mâncat | potolit foamea",
        "dormit | odihnit", "economisit | cumpărat o casă", "sunat | vorbit cu cineva", "citit | învățat",
        "exercițiu | slăbit", "gătit | mâncat", "călătorit | văzut lumea",
    ],
    "ObstructedBy": [
        "dormit | zgomot", "condus | ceață", "citit | întuneric", "alergat | accidentare",
        "învățat | oboseală", "mers | zăpadă", "vorbit | gălăgie", "zburat | furtună",
        "concentrare | telefon", "înotat | valuri",
    ],
    "Desires": [
        "pisică | lapte", "câine | os", "copil | jucării", "om | fericire", "student | note bune",
        "pasăre | libertate", "albină | flori", "muncitor | salariu", "turist | soare", "elev | vacanță",
    ],
    "CreatedBy": [
        "tablou | pictor", "carte | scriitor", "pâine | brutar", "casă | constructor",
        "cântec | compozitor", "miere | albine", "statuie | sculptor", "film | regizor", "haine | croitor",
        "program | programator",
    ],
    "CapableOf": [
        "pasăre | zbura", "pește | înota", "câine | lătra", "om | gândi", "copil | învăța",
        "pisică | toarce", "cal | alerga", "soare | încălzi", "profesor | preda", "bucătar | găti",
        "calculator | calcula", "vânt | sufla",
    ],
    "HasContext": [
        "gol/n | fotbal", "ofsaid/n | fotbal", "algoritm/n | informatică", "diagnostic/n | medicină",
        "verb/n | gramatică", "rimă/n | poezie", "ecuație/n | matematică", "proces/n | drept",
        "altoi/n | grădinărit", "vot/n | politică", "celulă/n | biologie", "acord/n | muzică",
    ],
    "IsA": [
        "câine/n | animal/n", "pisică/n | animal/n", "măr/n | fruct/n", "trandafir/n | floare/n",
        "stejar/n | copac/n", "bucurești | oraș", "românia | țară", "dunăre | râu",
        "vioară | instrument muzical", "fotbal | sport", "roșu | culoare", "luni | zi a săptămânii",
        "medic | profesie", "rață | pasăre", "somon | pește",
    ],
    "RelatedTo": [
        "mare/n | val/n", "școală | profesor", "iarnă | zăpadă", "vară | vacanță", "muzică | cântec",
        "bucătărie | mâncare", "spital | boală", "pădure | copac", "carte | poveste", "ceas | timp",
        "bancă/n/wikt/en_1 | bani", "bancă/n/wikt/en_2 | parc", "grădină | flori", "munte | zăpadă",
    ],
    "SimilarTo": [
        "mare/a | imens/a", "mic/a | minuscul/a", "frumos/a | drăguț/a", "rapid/a | iute/a",
        "inteligent/a | deștept/a", "trist/a | abătut/a", "vesel/a | bucuros/a", "fierbinte/a | încins/a",
        "liniștit/a | calm/a", "curat/a | limpede/a",
    ],
    "Synonym": [
        "mașină/n | automobil/n", "doctor/n | medic/n", "casă/n | locuință/n", "copil/n | prunc/n",
        "drum/n | cale/n", "începe/v | porni/v", "sfârșit/n | final/n", "vorbă/n | cuvânt/n",
        "iute/a | repede", "nevastă/n | soție/n", "dar/n | cadou/n", "greșeală/n | eroare/n",
        "câine/n | /c/en/dog/n", "pisică/n | /c/en/cat/n", "casă/n | /c/en/house/n",
        "apă/n | /c/en/water/n", "carte/n | /c/en/book/n", "măr/n | /c/en/apple/n",
        "școală/n | /c/en/school/n", "prieten/n | /c/en/friend/n", "frumos/a | /c/en/beautiful/a",
        "mare/n | /c/en/sea/n", "bancă/n/wikt/en_1 | /c/en/bank/n/wn/group",
        "bancă/n/wikt/en_2 | /c/en/bench/n",
    ],
    "SymbolOf": [
        "porumbel | pace", "inimă | dragoste", "trandafir | iubire", "leu | curaj",
        "bufniță | înțelepciune", "cruce | creștinism", "tricolor | românia", "ancoră | speranță",
        "balanță | dreptate", "măslin | pace",
    ],
    "DefinedAs": [
        "orfan | copil fără părinți", "văduvă | femeie al cărei soț a murit", "burlac | bărbat necăsătorit",
        "an | douăsprezece luni", "deceniu | zece ani", "secol | o sută de ani",
        "triunghi | poligon cu trei laturi", "brutar | om care face pâine", "pediatru | medic de copii",
        "bibliotecă | loc cu multe cărți",
    ],
    "DistinctFrom": [
        "luni | marți", "câine | pisică", "iarnă | vară", "roșu | verde", "nord | sud", "băiat | fată",
        "apă | foc", "cer | pământ", "primăvară | toamnă", "est | vest",
    ],
    "MannerOf": [
        "alerga/v | merge/v", "șopti/v | vorbi/v", "striga/v | vorbi/v", "înota/v | se deplasa/v",
        "devora/v | mânca/v", "sorbi/v | bea/v", "mormăi/v | vorbi/v", "schia/v | aluneca/v",
        "dansa/v | se mișca/v", "nota/v | scrie/v",
    ],
    "LocatedNear": [
        "pernă | pat", "furculiță | cuțit", "farfurie | pahar", "pantof | șosetă", "scaun | masă",
        "lampă | birou", "chiuvetă | oglindă", "far | mare/n", "bancă/n/wikt/en_2 | alee",
        "mouse | tastatură",
    ],
}

# Rows whose start is English and end Romanian: kept by --match either, dropped by the default.
EN_TO_RO = [
    ("Synonym", "/c/en/dog/n", "câine/n"), ("Synonym", "/c/en/bread/n", "pâine/n"),
    ("Synonym", "/c/en/moon/n", "lună/n"), ("Synonym", "/c/en/milk/n", "lapte/n"),
    ("Synonym", "/c/en/night/n", "noapte/n"), ("RelatedTo", "/c/en/danube", "dunăre"),
    ("RelatedTo", "/c/en/bucharest", "bucurești"), ("Synonym", "/c/en/tree/n", "copac/n"),
]
EXTERNAL = [
    "bucurești", "românia", "dunăre", "carpați", "cluj napoca", "iași", "brașov", "timișoara", "constanța",
    "marea neagră",
]
# fmt: on

SURFACE = {
    "IsA": "[[{s}]] este un fel de [[{e}]]",
    "UsedFor": "[[{s}]] se folosește pentru [[{e}]]",
    "AtLocation": "[[{s}]] se găsește de obicei în [[{e}]]",
    "CapableOf": "[[{s}]] poate [[{e}]]",
    "PartOf": "[[{s}]] face parte din [[{e}]]",
}


def _node(spec: str) -> str:
    spec = spec.strip()
    if spec.startswith("/c/"):
        return spec
    word, _, rest = spec.partition("/")
    return f"/c/ro/{word.replace(' ', '_')}" + (f"/{rest}" if rest else "")


def _meta(rel: str, start: str, end: str, weight: float) -> str:
    meta: dict[str, object] = {
        "dataset": "/d/lrltool-example/ro",
        "license": "cc:by-sa/4.0",
        "sources": [{"contributor": "/s/contributor/lrltool/examples"}],
        "weight": weight,
    }
    if rel in SURFACE:
        s, e = start.split("/")[3].replace("_", " "), end.split("/")[3].replace("_", " ")
        meta.update(surfaceStart=s, surfaceEnd=e, surfaceText=SURFACE[rel].format(s=s, e=e))
    return json.dumps(meta, sort_keys=True, ensure_ascii=False)


def _row(rel: str, start: str, end: str, meta: str) -> str:
    return f"/a/[/r/{rel}/,{start}/,{end}/]\t/r/{rel}\t{start}\t{end}\t{meta}"


def written_conceptnet_rows() -> list[str]:
    weights = (1.0, 2.0, 1.0, 0.5, 1.0, 3.464)
    rows = []
    for rel, pairs in RO_TRIPLES.items():
        for i, pair in enumerate(pairs):
            start_spec, end_spec = pair.split("|")
            start, end = _node(start_spec), _node(end_spec)
            rows.append(_row(rel, start, end, _meta(rel, start, end, weights[i % len(weights)])))
    for rel, start_spec, end_spec in EN_TO_RO:
        start, end = _node(start_spec), _node(end_spec)
        rows.append(_row(rel, start, end, _meta(rel, start, end, 1.0)))
    for word in EXTERNAL:
        node = _node(word)
        url = "http://ro.dbpedia.org/resource/" + "_".join(w.capitalize() for w in word.split())
        meta = json.dumps(
            {
                "dataset": "/d/lrltool-example/ro",
                "license": "cc:by-sa/4.0",
                "sources": [{"contributor": "/s/contributor/lrltool/examples"}],
                "weight": 1.0,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        rows.append(_row("ExternalURL", node, url, meta))
    return rows


def write_conceptnet(samples: Path, out: Path) -> int:
    real = (samples / "conceptnet" / "assertions-sample.csv").read_text(encoding="utf-8").splitlines()
    rows = sorted(set(real) | set(written_conceptnet_rows()))  # the dump is sorted by edge URI
    out.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(rows) + "\n").encode("utf-8")
    path = out / "conceptnet-assertions-5.7.0-excerpt.csv.gz"
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    return len(rows)


# ---------------------------------------------------------------------------------------------------
# GlotCC: documents of SIB-200 *train* sentences (never FLORES devtest) and paragraphs written here.

WRITTEN_PARAGRAPHS = [
    "Primăvara a venit devreme anul acesta. Copacii din parc au înflorit, iar copiii se joacă pe alei "
    "până seara târziu.",
    "Biblioteca din cartier are o sală nouă de lectură. Elevii vin aici după ore ca să își facă temele "
    "și să citească reviste.",
    "Piața centrală este plină de legume proaspete. Țăranii aduc roșii, ardei și castraveți din grădinile "
    "lor de la marginea orașului.",
    "Trenul de noapte spre Constanța pleacă la ora zece. Vara, vagoanele sunt pline de turiști care merg "
    "la mare.",
    "Bunica pregătește cozonac de sărbători. Aluatul crește încet lângă sobă, iar toată casa miroase a "
    "vanilie și nucă.",
    "Echipa locală de fotbal a câștigat meciul de duminică. Suporterii au cântat pe stadion până la "
    "fluierul final.",
    "Muzeul satului găzduiește case vechi din toate regiunile țării. Vizitatorii pot vedea cum trăiau "
    "oamenii acum o sută de ani.",
    "Ploaia a ținut toată ziua, așa că am rămas în casă. Am citit o carte și am băut ceai de tei.",
    "Medicul de familie recomandă mișcare zilnică. O plimbare de jumătate de oră ajută inima și "
    "alungă stresul.",
    "În satul de munte, iarna este lungă. Drumurile sunt acoperite de zăpadă, iar oamenii își fac "
    "provizii din toamnă.",
    "Studenții au organizat un concert în aula universității. Au cântat muzică populară și piese de jazz.",
    "Noul pod peste râu a fost deschis circulației. Mașinile nu mai trebuie să ocolească prin centrul "
    "orașului.",
    "Grădina botanică are peste zece mii de specii de plante. Sera tropicală este locul preferat al "
    "copiilor.",
    "Fermierii se plâng de secetă. Porumbul a crescut prea puțin, iar fântânile au secat în august.",
    "Orchestra a repetat toată săptămâna pentru spectacolul de sâmbătă. Biletele s-au vândut în câteva ore.",
    "Pe litoral, hotelurile se pregătesc de sezon. Plajele sunt curățate, iar terasele își deschid porțile.",
    "Primăria a plantat o sută de tei pe bulevardul principal. În iunie, tot orașul va mirosi a flori.",
    "Bibliotecara le citește copiilor povești în fiecare vineri. Cei mici ascultă cu atenție și pun "
    "multe întrebări.",
    "Vinul din podgoriile Moldovei este cunoscut în toată lumea. Strugurii se culeg la sfârșitul lui "
    "septembrie.",
    "Drumul prin pădure duce la o cabană veche. Acolo, turiștii se odihnesc înainte de a urca spre vârf.",
    "Școala din sat a primit calculatoare noi. Profesorul de informatică îi învață pe elevi să scrie "
    "programe simple.",
    "Brutăria de pe colț deschide la cinci dimineața. Pâinea caldă se termină de obicei până la opt.",
    "Cercetătorii au descoperit o specie nouă de fluture în Delta Dunării. Aripile lui au pete albastre "
    "și portocalii.",
    "La marginea lacului, pescarii așteaptă răbdători. Unii stau acolo de la răsărit până la apus.",
]


def glotcc_documents(samples: Path) -> list[str]:
    train = _sib_rows(samples / "sib200" / "ron_Latn" / "train.tsv")
    sentences = [text for _, _, text in train]
    documents = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)]
    documents += WRITTEN_PARAGRAPHS
    random.Random(7).shuffle(documents)
    return documents


def write_glotcc(samples: Path, out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    documents = glotcc_documents(samples)
    rng = random.Random(11)
    n = len(documents)
    ids = [f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'lrltool-example-{i}')}>" for i in range(n)]
    table = pa.table(
        {
            "content": pa.array(documents, pa.string()),
            "warc-target-uri": [f"https://example.ro/articol/{i + 1}" for i in range(n)],
            "warc-date": [f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00Z" for i in range(n)],
            "warc-record-id": ids,
            "quality-warnings": pa.array(
                [[] if i % 9 else ["short_sentences"] for i in range(n)], pa.list_(pa.string())
            ),
            "categories": pa.array([[] for _ in range(n)], pa.list_(pa.string())),
            "identification-language": ["ron_Latn"] * n,
            "identification-prob": [round(0.9 + rng.random() / 10, 4) for _ in range(n)],
            "identification-consistency": [1.0] * n,
            "script-percentage": [1.0] * n,
            "num-sents": [doc.count(". ") + 1 for doc in documents],
            "content-length": [len(doc.encode("utf-8")) for doc in documents],
            "tlsh": ["T1" + hashlib.sha256(doc.encode()).hexdigest()[:70].upper() for doc in documents],
        }
    )
    folder = out / "v1.0" / "ron-Latn"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "ron-Latn_0.parquet", compression="zstd")
    return n


# ---------------------------------------------------------------------------------------------------
# FLORES (tarball layout): devtest = SIB-200 test sentences, dev = SIB-200 dev sentences.


def write_flores(samples: Path, out: Path) -> dict[str, int]:
    counts = {}
    for split, sib in (("devtest", "test"), ("dev", "dev")):
        rows = _sib_rows(samples / "sib200" / "ron_Latn" / f"{sib}.tsv")
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"ron_Latn.{split}").write_text(
            "".join(text + "\n" for _, _, text in rows), encoding="utf-8"
        )
        counts[split] = len(rows)
    return counts


def _sib_rows(path: Path) -> list[tuple[str, str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        next(reader)
        return [(r[0], r[1], r[2]) for r in reader]


def write_sib200(samples: Path, out: Path) -> None:
    folder = out / "data" / "annotated" / "ron_Latn"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train.tsv", "dev.tsv", "test.tsv", "labels.txt"):
        shutil.copyfile(samples / "sib200" / "ron_Latn" / name, folder / name)


# ---------------------------------------------------------------------------------------------------
# WikiANN: Romanian sentences written from templates; entities in [[TYPE:words]].

# fmt: off
PEOPLE = [
    "Ana Popescu", "Mihai Ionescu", "Elena Dumitrescu", "Andrei Stan", "Ioana Marin", "Radu Georgescu",
    "Maria Constantinescu", "Vlad Munteanu", "Cristina Dobre", "Alexandru Lupu", "Irina Barbu",
    "Dan Petrescu", "Gabriela Stoica", "Paul Niculescu", "Sorin Ene", "Laura Toma", "Bogdan Matei",
    "Adriana Voicu", "Tudor Florea", "Corina Neagu",
]
PLACES = [
    "București", "Cluj-Napoca", "Iași", "Timișoara", "Brașov", "Constanța", "Sibiu", "Craiova", "Oradea",
    "Suceava", "Galați", "Pitești", "Arad", "Baia Mare", "Târgu Mureș", "Delta Dunării", "Munții Apuseni",
    "Moldova", "Transilvania", "Banat", "Dobrogea", "Franța", "Italia", "Germania", "Viena",
]
ORGS = [
    "Academia Română", "Universitatea din București", "Universitatea Babeș-Bolyai", "Teatrul Național",
    "Banca Națională a României", "Opera Română", "Muzeul Național de Artă", "Institutul Cantacuzino",
    "Filarmonica George Enescu", "Crucea Roșie", "Societatea Română de Radiodifuziune",
    "Agenția Spațială Română", "Clubul Sportiv Rapid", "Biblioteca Centrală Universitară",
]
# fmt: on

NER_TEMPLATES = [
    "[[PER:{p}]] s-a născut în [[LOC:{l}]] .",
    "[[PER:{p}]] lucrează la [[ORG:{o}]] din [[LOC:{l}]] .",
    "[[ORG:{o}]] are sediul în [[LOC:{l}]] .",
    "În [[LOC:{l}]] , [[PER:{p}]] a deschis o librărie .",
    "[[PER:{p}]] face parte din [[ORG:{o}]] .",
    "[[PER:{p}]] și [[PER:{q}]] au vizitat [[LOC:{l}]] .",
    "Concertul de la [[LOC:{l}]] a fost organizat de [[ORG:{o}]] .",
    "[[PER:{p}]] ( n. 1950 , [[LOC:{l}]] ) a scris mai multe romane .",
    "[[PER:{p}]] a fost numit director la [[ORG:{o}]] .",
    "Drumul dintre [[LOC:{l}]] și [[LOC:{m}]] a fost reparat .",
    "[[PER:{p}]] a studiat la [[ORG:{o}]] .",
    "[[ORG:{o}]] organizează o expoziție în [[LOC:{l}]] .",
    "Trenul de la [[LOC:{l}]] la [[LOC:{m}]] a întârziat o oră .",
    "[[PER:{p}]] a primit un premiu de la [[ORG:{o}]] .",
    "[[PER:{p}]] locuiește cu familia în [[LOC:{l}]] .",
    "[[ORG:{o}]] a anunțat un nou program de burse .",
    "Primarul din [[LOC:{l}]] , [[PER:{p}]] , a inaugurat parcul .",
    "[[ORG:{o}]] și-a deschis o filială în [[LOC:{l}]] .",
    "Cartea scrisă de [[PER:{p}]] a apărut anul trecut .",
    "Am petrecut vacanța între [[LOC:{l}]] și [[LOC:{m}]] .",
    "Vara aceasta , [[PER:{p}]] va preda un curs la [[ORG:{o}]] .",
    "Festivalul de film are loc în fiecare toamnă în [[LOC:{l}]] .",
    "[[PER:{p}]] a publicat un studiu la [[ORG:{o}]] .",
    "Muzeul din [[LOC:{l}]] a cumpărat un tablou pictat de [[PER:{p}]] .",
    "Vremea a fost frumoasă toată săptămâna .",
    "Prețurile au crescut din nou luna aceasta .",
]
NER_SPLITS = {"train": 300, "validation": 60, "test": 60}


def ner_sentence(template: str, rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    p, q = rng.sample(PEOPLE, 2)
    place, other_place = rng.sample(PLACES, 2)
    filled = template.format(p=p, q=q, l=place, m=other_place, o=rng.choice(ORGS))
    tokens: list[str] = []
    tags: list[str] = []
    spans: list[str] = []
    rest = filled
    while rest:
        before, marker, after = rest.partition("[[")
        for word in before.split():
            tokens.append(word)
            tags.append("O")
        if not marker:
            break
        entity, _, rest = after.partition("]]")
        kind, _, words = entity.partition(":")
        for i, word in enumerate(words.split()):
            tokens.append(word)
            tags.append(("B-" if i == 0 else "I-") + kind)
        spans.append(f"{kind}: {words}")
    return tokens, tags, spans


def write_wikiann(out: Path) -> dict[str, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lrltool.sources.wikiann import TAGS

    rng = random.Random(3)
    folder = out / "ro"
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[tuple[str, ...]] = set()
    counts = {}
    for split, n in NER_SPLITS.items():
        rows: dict[str, list] = {"tokens": [], "ner_tags": [], "langs": [], "spans": []}
        while len(rows["tokens"]) < n:
            tokens, tags, spans = ner_sentence(rng.choice(NER_TEMPLATES), rng)
            if tuple(tokens) in seen:  # no sentence in two splits
                continue
            seen.add(tuple(tokens))
            rows["tokens"].append(tokens)
            rows["ner_tags"].append([TAGS.index(t) for t in tags])
            rows["langs"].append(["ro"] * len(tokens))
            rows["spans"].append(spans)
        table = pa.table(
            {
                "tokens": pa.array(rows["tokens"], pa.list_(pa.string())),
                "ner_tags": pa.array(rows["ner_tags"], pa.list_(pa.int64())),
                "langs": pa.array(rows["langs"], pa.list_(pa.string())),
                "spans": pa.array(rows["spans"], pa.list_(pa.string())),
            }
        )
        pq.write_table(table, folder / f"{split}-00000-of-00001.parquet")
        counts[split] = n
    return counts


# ---------------------------------------------------------------------------------------------------
# Sentiment: short Romanian reviews written from templates, balanced 0/1.

# noun (with article), gender: m(asculine/neuter singular) or f(eminine)
# fmt: off
SUBJECTS = [
    ("filmul", "m"), ("cartea", "f"), ("telefonul", "m"), ("restaurantul", "m"), ("hotelul", "m"),
    ("aplicația", "f"), ("mâncarea", "f"), ("camera", "f"), ("serialul", "m"), ("livrarea", "f"),
    ("produsul", "m"), ("cafeneaua", "f"), ("piesa", "f"), ("laptopul", "m"), ("excursia", "f"),
]
POSITIVE_ADJ = [
    ("excelent", "excelentă"), ("minunat", "minunată"), ("foarte bun", "foarte bună"),
    ("plăcut", "plăcută"), ("impresionant", "impresionantă"), ("perfect", "perfectă"),
]
NEGATIVE_ADJ = [
    ("dezamăgitor", "dezamăgitoare"), ("groaznic", "groaznică"), ("foarte slab", "foarte slabă"),
    ("plictisitor", "plictisitoare"), ("scump și prost", "scumpă și proastă"), ("lent", "lentă"),
]
# fmt: on

POSITIVE = [
    "{S} a fost {A} , recomand cu căldură .",
    "Sunt foarte mulțumit , {s} este {A} .",
    "{S} este {A} și merită fiecare leu .",
    "Mi-a plăcut mult , {s} a fost {A} .",
    "O experiență frumoasă : {s} este {A} .",
    "Aș reveni oricând , {s} a fost {A} .",
]
NEGATIVE = [
    "{S} a fost {A} , nu recomand .",
    "Sunt dezamăgit , {s} este {A} .",
    "{S} este {A} și nu merită banii .",
    "Nu mi-a plăcut deloc , {s} a fost {A} .",
    "O experiență neplăcută : {s} este {A} .",
    "Nu mai revin , {s} a fost {A} .",
]
SA_SPLITS = {"train": 300, "dev": 60, "test": 80}


def write_sentiment(out: Path) -> dict[str, int]:
    rng = random.Random(5)
    folder = out / "romanian_sa"
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    counts = {}
    for split, n in SA_SPLITS.items():
        rows = []
        while len(rows) < n:
            label = len(rows) % 2
            subject, gender = rng.choice(SUBJECTS)
            adjective = rng.choice(POSITIVE_ADJ if label else NEGATIVE_ADJ)[0 if gender == "m" else 1]
            template = rng.choice(POSITIVE if label else NEGATIVE)
            text = template.format(S=subject.capitalize(), s=subject, A=adjective).replace(" ,", ",")
            text = text.replace(" .", ".").replace(" :", ":")
            if text in seen:
                continue
            seen.add(text)
            rows.append((text, label))
        rng.shuffle(rows)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)
        (folder / f"{split}.csv").write_text(buffer.getvalue(), encoding="utf-8")
        counts[split] = n
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=Path, required=True, help="the folder of real published rows")
    args = parser.parse_args()
    print("conceptnet rows:", write_conceptnet(args.samples, HERE / "conceptnet"))
    print("glotcc documents:", write_glotcc(args.samples, HERE / "glotcc"))
    print("flores sentences:", write_flores(args.samples, HERE / "flores"))
    write_sib200(args.samples, HERE / "sib200")
    print("wikiann sentences:", write_wikiann(HERE / "wikiann"))
    print("sentiment rows:", write_sentiment(HERE / "sentiment"))


if __name__ == "__main__":
    main()
