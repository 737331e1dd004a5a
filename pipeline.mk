# The lrltool pipeline for one language. The top-level Makefile calls it with L=<language code> and
# HAVE=<the sources that have it> (both from `lrltool languages`) and the user's variables; see README.md
# "The Makefile". Steps whose data do not exist for the language are skipped, said in the log and noted
# in the report.
#
#   fetch -> verbalize -> cap -> train-adapter (METHODS x SOURCES, + full) -> finetune (TASKS x adapters,
#   + baselines, + fusion) -> eval -> report
#
# Every step writes a real file target (a run's .done marker, a metrics file) so Make skips finished work
# and `make -j` trains independent runs side by side; a failed step leaves no target that looks done.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:
.SECONDARY:
MAKEFLAGS += --no-builtin-rules

ifeq ($(origin LANG),command line)
unexport LANG
endif
export PYTHONUTF8 := 1

ifndef L
$(error pipeline.mk needs L=<language code>; run it through the top-level Makefile: make LANG=ron all)
endif

LRLTOOL ?= .venv/bin/lrltool
MODEL ?= xlm-roberta-base
METHODS ?= seq_bn seq_bn_inv lora
SOURCES ?= glotcc conceptnet
TASKS ?= tc sa ner
SEEDS ?= 1 2 3
PRESET ?= paper
DATA ?=
OUT ?= runs
FULL ?= yes
FULL_FT ?= yes
# AdapterFusion of each method's ConceptNet and GlotCC adapters: for which tasks, of which methods. PRESET=paper
# as the seed ran it: NER only, seq_bn and seq_bn_inv (src/ner/train_ner.py at 08d2c23:187-226 is its only
# Fuse; get_results_fusion.py:9 reads both), none for a decoder (its fusion loads MLM adapters only);
# lrltool's plan (PRESET=): every task, seq_bn.
FUSION_TASKS ?= $(if $(PRESET),$(if $(filter clm,$(LM_TASK)),,ner),$(TASKS_ASKED))
FUSION_METHODS ?= $(if $(PRESET),seq_bn seq_bn_inv,seq_bn)
GLOTCC_CAP ?= 1G
SPLIT ?= train=0.8,validation=0.1,test=0.1
PROMPT_MODEL ?=
PROMPT_SHOTS ?= 0 3
PROMPT_TASKS ?= tc sa
CAP_SIZES ?= 1M 10M 100M 1G
SIZE_METHODS ?= seq_bn
TRAIN_ARGS ?=
FINETUNE_ARGS ?=
EVAL_ARGS ?=
REPORT_ARGS ?= --compare-paper
# A prefix for every training and evaluation recipe, e.g. SUBMIT='srun --gres=gpu:1 --time=24:00:00'
# (README.md "Slurm"); fetch, verbalize, cap and report run where make runs.
SUBMIT ?=
# GPUS="0 1 2 3": each training or evaluation job takes a GPU of the list that no other concurrent make job
# holds (tools/with-gpu: a lock file per GPU under OUT/.gpu-locks, CUDA_VISIBLE_DEVICES); with make -jN.
GPUS ?=
GPU := $(if $(strip $(GPUS)),tools/with-gpu $(OUT)/.gpu-locks "$(strip $(GPUS))" )
# Under a PRESET the data are prepared and PPPL scored as the paper's code did (docs/paper-protocol.md):
# verbalize/cap --paper-compat (split first, then these caps by line share), eval --task mlm --paper-compat.
PAPER_CAPS ?= train=1GiB,validation=200MiB

# The sources that have the language (the top-level Makefile passes them); steps without data are skipped.
HAVE ?= $(shell $(LRLTOOL) languages $(L) --field sources)
# mlm (pseudo-perplexity) for encoders, clm (perplexity) for decoders: a local model's config.json, else
# a hub id naming LLaMA; LM_TASK=clm|mlm overrides.
MODEL_TYPE := $(shell sed -n 's/.*"model_type": *"\([^"]*\)".*/\1/p' $(MODEL)/config.json 2>/dev/null)
LM_TASK ?= $(if $(filter llama,$(MODEL_TYPE))$(findstring llama,$(shell echo '$(MODEL)' | tr A-Z a-z)),clm,mlm)

D := $(OUT)/$(L)
empty :=
space := $(empty) $(empty)
comma := ,
SEEDS_CSV := $(subst $(space),$(comma),$(strip $(SEEDS)))
# --input for a source when DATA holds local copies (the layout of examples/), else download.
input = $(if $(DATA),--input $(DATA)/$(1))
train_preset = $(if $(PRESET),--preset $(PRESET)-$(1))
finetune_preset = $(if $(PRESET),--preset $(PRESET))
paper_compat = $(if $(PRESET),--paper-compat)
mlm_compat = $(if $(and $(PRESET),$(filter mlm,$(LM_TASK))),$(space)--paper-compat)

# Task -> fetch source (the task registry's, lrltool/tasks.py; a test keeps the two equal).
source_tc := sib200
source_sa := sentiment
source_ner := wikiann

# What the sources have for this language: adaptation sources, tasks (by their data source), FLORES.
missing = $(filter-out $(HAVE),$(1))
SKIPPED_SOURCES := $(call missing,$(SOURCES))
SKIPPED_TASKS := $(foreach t,$(TASKS),$(if $(call missing,$(source_$(t))),$(t)))
HAVE_FLORES := $(filter flores,$(HAVE))
SOURCES_ASKED := $(SOURCES)
TASKS_ASKED := $(TASKS)
override SOURCES := $(filter $(HAVE),$(SOURCES))
override TASKS := $(filter-out $(SKIPPED_TASKS),$(TASKS))
SKIP_NOTES := $(strip \
	$(if $(HAVE_FLORES),,FLORES-200 has no $(L): no $(if $(filter clm,$(LM_TASK)),perplexity,pseudo-perplexity).) \
	$(foreach s,$(SKIPPED_SOURCES),$(s) has no $(L): no $(s) adapters.) \
	$(foreach t,$(SKIPPED_TASKS),$(source_$(t)) has no $(L): no $(t) task.))
$(if $(SKIP_NOTES),$(if $(filter show-config,$(MAKECMDGOALS)),,$(info lrltool pipeline, skipped for $(L): $(SKIP_NOTES))))
REPORT_NOTE := $(if $(SKIP_NOTES),--note "Skipped for $(L) (the sources lack its data): $(SKIP_NOTES)")

ADAPTER_METHODS := $(METHODS) $(if $(filter yes,$(FULL)),full)
ADAPTERS := $(foreach m,$(ADAPTER_METHODS),$(foreach s,$(SOURCES),$(m)-$(s)))
HAVE_BOTH := $(and $(filter glotcc,$(SOURCES)),$(filter conceptnet,$(SOURCES)))
UNFUSABLE := $(filter-out seq_bn seq_bn_inv,$(FUSION_METHODS))
$(if $(UNFUSABLE),$(error FUSION_METHODS: AdapterFusion fuses bottleneck adapters (seq_bn, seq_bn_inv), not $(UNFUSABLE)))
FUSIONS := $(if $(HAVE_BOTH),$(foreach m,$(filter $(METHODS),$(FUSION_METHODS)),fusion-$(m)))
# $(call task_variants,TASK): the runs of one task; fusion only for the FUSION_TASKS
task_variants = baseline $(if $(filter yes,$(FULL_FT)),fullft) $(ADAPTERS) $(if $(filter $(1),$(FUSION_TASKS)),$(FUSIONS))

MLM_METRICS := $(if $(HAVE_FLORES),$(D)/metrics/$(LM_TASK)-base.jsonl \
	$(foreach a,$(ADAPTERS),$(D)/metrics/$(LM_TASK)-$(a).jsonl))
TASK_METRICS := $(foreach t,$(TASKS),$(foreach v,$(call task_variants,$(t)),$(D)/metrics/$(t)-$(v).jsonl))
PROMPT_METRICS := $(if $(PROMPT_MODEL),$(foreach t,$(filter $(TASKS),$(PROMPT_TASKS)),\
	$(foreach k,$(PROMPT_SHOTS),$(D)/metrics/$(t)-prompt-$(k)shot.jsonl)))
METRICS := $(MLM_METRICS) $(TASK_METRICS) $(PROMPT_METRICS)

.PHONY: all data adapters finetune metrics report sizes plan show-config

all: report
data: $(if $(HAVE_FLORES),$(D)/data/flores.jsonl.zst) $(foreach s,$(SOURCES),$(D)/data/$(s)/.done) \
	$(foreach t,$(TASKS),$(D)/data/$(t)/.done)
adapters: $(foreach a,$(ADAPTERS),$(D)/adapters/$(a)/.done)
finetune: $(foreach t,$(TASKS),$(foreach v,$(call task_variants,$(t)),$(D)/tasks/$(t)/$(v)/.done))
metrics: $(METRICS)
report: $(D)/report/report.md

# --- data ------------------------------------------------------------------------------------------

$(D)/data/glotcc-raw.jsonl.zst:
	$(LRLTOOL) fetch glotcc --lang $(L) $(call input,glotcc) -o $@

$(D)/data/glotcc/.done: $(D)/data/glotcc-raw.jsonl.zst
	rm -rf $(@D)
	$(LRLTOOL) cap $< $(if $(PRESET),--paper-compat --max-bytes $(PAPER_CAPS),--max-bytes $(GLOTCC_CAP) \
		--split $(SPLIT)) -o $(@D) --stats $(D)/data/glotcc-cap.json
	touch $@

$(D)/data/conceptnet-triples.jsonl.zst:
	$(LRLTOOL) fetch conceptnet --lang $(L) $(call input,conceptnet) -o $@

$(D)/data/conceptnet/.done: $(D)/data/conceptnet-triples.jsonl.zst
	rm -rf $(@D)
	$(LRLTOOL) verbalize $< $(paper_compat) | $(LRLTOOL) cap $(if $(PRESET),--paper-compat,--split $(SPLIT)) \
		-o $(@D) --stats $(D)/data/conceptnet-cap.json
	touch $@

$(D)/data/flores.jsonl.zst:
	$(LRLTOOL) fetch flores --lang $(L) $(call input,flores)$(if $(PRESET), --edition flores200) -o $@

$(D)/data/%/.done:
	rm -rf $(@D)
	$(LRLTOOL) fetch $(source_$*) --lang $(L) $(call input,$(source_$*)) -o $(@D)
	touch $@

# --- the recipes every training and evaluation rule shares ---------------------------------------------
# A run folder left by an interrupted run is resumed; anything else is started afresh. Each is called
# inside an $(eval $(call ...)) template, so $$ marks what the recipe expands when it runs.

# $(call train_adapter_cmd,METHOD,SOURCE,TRAIN,VALIDATION,OUTDIR)
define train_adapter_cmd
$(SUBMIT) $(GPU)$(LRLTOOL) train-adapter --model $(MODEL) --method $(1) $(call train_preset,$(2)) \
		--train $(3) --validation $(4) \
		$(TRAIN_ARGS) $$(if $$(wildcard $(5)/checkpoints/*),--resume,--force) -o $(5)
endef

# $(call finetune_cmd,TASK,OPTIONS,OUTDIR)
define finetune_cmd
$(SUBMIT) $(GPU)$(LRLTOOL) finetune --task $(1) --model $(MODEL) --data $(D)/data/$(1) --lang $(L) $(2) \
		--seeds $(SEEDS_CSV) $(finetune_preset) $(FINETUNE_ARGS) --force -o $(3)
endef

# $(call eval_mlm_cmd,OPTIONS) with the FLORES file as $$<: --task mlm, or clm for a decoder (LM_TASK)
define eval_mlm_cmd
mkdir -p $$(@D)
	$(SUBMIT) $(GPU)$(LRLTOOL) eval --task $(LM_TASK) --model $(MODEL) $(1)$(mlm_compat) $$< $(EVAL_ARGS) > $$@
endef

# $(call eval_task_cmd,TASK) with the finetune run's .done as $$<
define eval_task_cmd
mkdir -p $$(@D)
	$(SUBMIT) $(GPU)$(LRLTOOL) eval --task $(1) --run $$(<D) $(EVAL_ARGS) > $$@
endef

# --- language adapters -------------------------------------------------------------------------------

define adapter_rule
$(D)/adapters/$(1)-$(2)/.done: $(D)/data/$(2)/.done
	$(call train_adapter_cmd,$(1),$(2),$(D)/data/$(2)/train.jsonl.zst,$(D)/data/$(2)/validation.jsonl.zst,$(D)/adapters/$(1)-$(2))
	touch $$@
endef
$(foreach m,$(ADAPTER_METHODS),$(foreach s,$(SOURCES),$(eval $(call adapter_rule,$(m),$(s)))))

# --- downstream tasks -------------------------------------------------------------------------------

# $(1) task, $(2) variant, $(3) finetune options, $(4) prerequisites
define task_rule
$(D)/tasks/$(1)/$(2)/.done: $(D)/data/$(1)/.done $(4)
	$(call finetune_cmd,$(1),$(3),$(D)/tasks/$(1)/$(2))
	touch $$@

$(D)/metrics/$(1)-$(2).jsonl: $(D)/tasks/$(1)/$(2)/.done
	$(call eval_task_cmd,$(1))
endef
$(foreach t,$(TASKS),$(eval $(call task_rule,$(t),baseline,,)))
$(foreach t,$(TASKS),$(eval $(call task_rule,$(t),fullft,--task-method full,)))
$(foreach t,$(TASKS),$(foreach a,$(ADAPTERS),$(eval $(call task_rule,$(t),$(a),\
	--lang-adapter $(D)/adapters/$(a),$(D)/adapters/$(a)/.done))))
$(foreach t,$(filter $(FUSION_TASKS),$(TASKS)),$(foreach m,$(FUSION_METHODS),$(eval $(call task_rule,$(t),fusion-$(m),\
	--lang-adapter $(D)/adapters/$(m)-conceptnet --lang-adapter $(D)/adapters/$(m)-glotcc --fusion,\
	$(D)/adapters/$(m)-conceptnet/.done $(D)/adapters/$(m)-glotcc/.done))))

# Prompting baselines with a local causal LM (zero- and K-shot).
define prompt_rule
$(D)/metrics/$(1)-prompt-$(2)shot.jsonl: $(D)/data/$(1)/.done
	mkdir -p $$(@D)
	$(SUBMIT) $(GPU)$(LRLTOOL) eval --task $(1) --prompt --model $(PROMPT_MODEL) --data $(D)/data/$(1) --shots $(2) \
		--lang $(L) $(EVAL_ARGS) > $$@
endef
$(foreach t,$(PROMPT_TASKS),$(foreach k,$(PROMPT_SHOTS),$(eval $(call prompt_rule,$(t),$(k)))))

# --- pseudo-perplexity ---------------------------------------------------------------------------------
# A `full` run is given as --adapter too: eval scores its model/ folder.

define mlm_rule
$(1): $(D)/data/flores.jsonl.zst $(if $(2),$(2)/.done)
	$(call eval_mlm_cmd,$(if $(2),--adapter $(2)))
endef
$(eval $(call mlm_rule,$(D)/metrics/$(LM_TASK)-base.jsonl,))
$(foreach a,$(ADAPTERS),$(eval $(call mlm_rule,$(D)/metrics/$(LM_TASK)-$(a).jsonl,$(D)/adapters/$(a))))

# --- report --------------------------------------------------------------------------------------------

$(D)/report/report.md: $(METRICS)
	$(LRLTOOL) report $(METRICS) $(foreach a,$(ADAPTERS),--runs $(D)/adapters/$(a)) $(REPORT_ARGS) \
		$(REPORT_NOTE) -o $(@D)

# --- make LANG=mlt plan: runs, steps, GPU hours and disk of `make all` (tools/plan.py) ----------------
ADAPTER_STEPS_PER_SEC ?=
FINETUNE_STEPS_PER_SEC ?=
PYTHON ?= python3
# Steps of an adapter run: --max-steps in TRAIN_ARGS, else the preset's (paper-glotcc 100k, paper-conceptnet
# 25k); 0 = unknown (epochs over the data).
max_steps = $(or $(patsubst --max-steps=%,%,$(filter --max-steps=%,$(subst --max-steps ,--max-steps=,$(TRAIN_ARGS)))),\
	$(if $(PRESET),$(if $(filter glotcc,$(1)),100000,25000)),0)
FT_EPOCHS := $(or $(patsubst --epochs=%,%,$(filter --epochs=%,$(subst --epochs ,--epochs=,$(FINETUNE_ARGS)))),null)
PLAN_JSON = {"lang": "$(L)", "model": "$(MODEL)", "out": "$(D)", "batch": 32, "epochs": $(FT_EPOCHS), \
	"adapter_rate": "$(ADAPTER_STEPS_PER_SEC)", "finetune_rate": "$(FINETUNE_STEPS_PER_SEC)", \
	"evals": $(words $(METRICS)), \
	"adapters": [$(subst $(space),$(comma),$(foreach a,$(ADAPTERS),{"run":"$(a)","steps":$(call max_steps,$(lastword $(subst -, ,$(a))))}))], \
	"tasks": [$(subst $(space),$(comma),$(foreach t,$(TASKS),$(foreach v,$(call task_variants,$(t)),{"task":"$(t)","variant":"$(v)","seeds":$(words $(SEEDS))})))], \
	"fusion": {"tasks": "$(strip $(FUSION_TASKS))", "methods": "$(strip $(FUSION_METHODS))"}}

plan:
	@echo '$(PLAN_JSON)' | $(PYTHON) tools/plan.py

# The settings that decide what runs (the top-level Makefile's show-config prints them).
show-config:
	@echo "PRESET: $(or $(PRESET),<none: lrltool's defaults>)"
	@echo "MODEL: $(MODEL) ($(if $(filter clm,$(LM_TASK)),decoder,encoder))"
	@echo "METHODS: $(METHODS)"
	@echo "SOURCES: $(SOURCES_ASKED)"
	@echo "TASKS: $(TASKS_ASKED)"
	@echo "FUSION_TASKS: $(or $(strip $(FUSION_TASKS)),<none>)"
	@echo "FUSION_METHODS: $(FUSION_METHODS)"

# --- how much adaptation data is enough (make LANG=mlt sizes) ------------------------------------------
# The GlotCC training split capped at each of CAP_SIZES (validation and test stay the same), the same
# adapter trained on each, then evaluated; report plots PPPL and F1 against adaptation-data size.

SIZE_ADAPTERS := $(foreach m,$(SIZE_METHODS),$(foreach c,$(CAP_SIZES),$(m)-glotcc-$(c)))
SIZE_METRICS := $(if $(HAVE_FLORES),$(D)/metrics/$(LM_TASK)-base.jsonl) \
	$(foreach t,$(TASKS),$(D)/metrics/$(t)-baseline.jsonl) \
	$(foreach a,$(SIZE_ADAPTERS),$(if $(HAVE_FLORES),$(D)/sizes/metrics/$(LM_TASK)-$(a).jsonl) \
		$(foreach t,$(TASKS),$(D)/sizes/metrics/$(t)-$(a).jsonl))

sizes: $(D)/sizes/report/report.md

$(D)/sizes/report/report.md: $(SIZE_METRICS)
	$(LRLTOOL) report $(SIZE_METRICS) $(foreach a,$(SIZE_ADAPTERS),--runs $(D)/sizes/adapters/$(a)) \
		$(REPORT_ARGS) $(REPORT_NOTE) -o $(@D)

$(D)/data/glotcc-%/train.jsonl.zst: $(D)/data/glotcc/.done
	$(LRLTOOL) cap $(D)/data/glotcc/train.jsonl.zst --max-bytes $* -o $@

define size_rule
$(D)/sizes/adapters/$(1)-glotcc-$(2)/.done: $(D)/data/glotcc-$(2)/train.jsonl.zst
	$(call train_adapter_cmd,$(1),glotcc,$$<,$(D)/data/glotcc/validation.jsonl.zst,$(D)/sizes/adapters/$(1)-glotcc-$(2))
	touch $$@
endef
$(foreach m,$(SIZE_METHODS),$(foreach c,$(CAP_SIZES),$(eval $(call size_rule,$(m),$(c)))))
$(foreach a,$(SIZE_ADAPTERS),$(eval $(call mlm_rule,$(D)/sizes/metrics/$(LM_TASK)-$(a).jsonl,$(D)/sizes/adapters/$(a))))

define size_task_rule
$(D)/sizes/tasks/$(1)/$(2)/.done: $(D)/data/$(1)/.done $(D)/sizes/adapters/$(2)/.done
	$(call finetune_cmd,$(1),--lang-adapter $(D)/sizes/adapters/$(2),$(D)/sizes/tasks/$(1)/$(2))
	touch $$@

$(D)/sizes/metrics/$(1)-$(2).jsonl: $(D)/sizes/tasks/$(1)/$(2)/.done
	$(call eval_task_cmd,$(1))
endef
$(foreach t,$(TASKS),$(foreach a,$(SIZE_ADAPTERS),$(eval $(call size_task_rule,$(t),$(a)))))

# --- the paper's protocol against lrltool's (make LANG=X protocols) ------------------------------------
# One method and source trained and evaluated twice: under the presets and --paper-compat (what the
# paper's code did) and under lrltool's defaults; the report puts them side by side with the difference
# (docs/paper-protocol.md lists every setting that differs).

PROTOCOL_METHOD ?= seq_bn
PROTOCOL_SOURCE ?= glotcc
PROTOCOL_TASKS ?= $(TASKS)
PROTOCOL_PRESET ?= paper
P := $(D)/protocols
is_paper = $(filter paper,$(1))
PROTOCOL_METRICS := $(foreach p,paper lrltool,$(if $(HAVE_FLORES),$(P)/$(p)/metrics/$(LM_TASK)-base.jsonl \
	$(P)/$(p)/metrics/$(LM_TASK)-adapter.jsonl) $(foreach t,$(filter $(TASKS),$(PROTOCOL_TASKS)),$(P)/$(p)/metrics/$(t).jsonl))

.PHONY: protocols
protocols: $(P)/report/protocols.md

$(P)/report/protocols.md: $(PROTOCOL_METRICS)
	$(LRLTOOL) report --protocols '$(P)/paper/metrics/*.jsonl' --protocols '$(P)/lrltool/metrics/*.jsonl' -o $(@D)

# $(1) protocol: paper | lrltool
define protocol_rule
$(P)/$(1)/data/glotcc/.done: $(D)/data/glotcc-raw.jsonl.zst
	rm -rf $$(@D)
	$(LRLTOOL) cap $$< $(if $(call is_paper,$(1)),--paper-compat --max-bytes $(PAPER_CAPS),--max-bytes $(GLOTCC_CAP) \
		--split $(SPLIT)) -o $$(@D)
	touch $$@

$(P)/$(1)/data/conceptnet/.done: $(D)/data/conceptnet-triples.jsonl.zst
	rm -rf $$(@D)
	$(LRLTOOL) verbalize $$< $(if $(call is_paper,$(1)),--paper-compat) | $(LRLTOOL) cap \
		$(if $(call is_paper,$(1)),--paper-compat,--split $(SPLIT)) -o $$(@D)
	touch $$@

$(P)/$(1)/adapter/.done: $(P)/$(1)/data/$(PROTOCOL_SOURCE)/.done
	$(SUBMIT) $(GPU)$(LRLTOOL) train-adapter --model $(MODEL) --method $(PROTOCOL_METHOD) \
		$(if $(call is_paper,$(1)),--preset $(PROTOCOL_PRESET)-$(PROTOCOL_SOURCE)) \
		--train $(P)/$(1)/data/$(PROTOCOL_SOURCE)/train.jsonl.zst \
		--validation $(P)/$(1)/data/$(PROTOCOL_SOURCE)/validation.jsonl.zst $(TRAIN_ARGS) --force -o $$(@D)
	touch $$@

$(P)/$(1)/metrics/$(LM_TASK)-base.jsonl: $(D)/data/flores.jsonl.zst
	mkdir -p $$(@D)
	$(SUBMIT) $(GPU)$(LRLTOOL) eval --task $(LM_TASK) --model $(MODEL)$(if $(call is_paper,$(1)),$(if $(filter mlm,$(LM_TASK)),$(space)--paper-compat)) $$< $(EVAL_ARGS) > $$@

$(P)/$(1)/metrics/$(LM_TASK)-adapter.jsonl: $(D)/data/flores.jsonl.zst $(P)/$(1)/adapter/.done
	mkdir -p $$(@D)
	$(SUBMIT) $(GPU)$(LRLTOOL) eval --task $(LM_TASK) --model $(MODEL) --adapter $(P)/$(1)/adapter$(if $(call is_paper,$(1)),$(if $(filter mlm,$(LM_TASK)),$(space)--paper-compat)) \
		--source $(PROTOCOL_SOURCE) $$< $(EVAL_ARGS) > $$@
endef
$(foreach p,paper lrltool,$(eval $(call protocol_rule,$(p))))

# $(1) protocol, $(2) task
define protocol_task_rule
$(P)/$(1)/tasks/$(2)/.done: $(D)/data/$(2)/.done $(P)/$(1)/adapter/.done
	$(SUBMIT) $(GPU)$(LRLTOOL) finetune --task $(2) --model $(MODEL) --data $(D)/data/$(2) --lang $(L) \
		--lang-adapter $(P)/$(1)/adapter --seeds $(SEEDS_CSV) $(if $(call is_paper,$(1)),--preset $(PROTOCOL_PRESET)) \
		$(FINETUNE_ARGS) --force -o $$(@D)
	touch $$@

$(P)/$(1)/metrics/$(2).jsonl: $(P)/$(1)/tasks/$(2)/.done
	$(call eval_task_cmd,$(2))
endef
$(foreach p,paper lrltool,$(foreach t,$(filter $(TASKS),$(PROTOCOL_TASKS)),$(eval $(call protocol_task_rule,$(p),$(t)))))
