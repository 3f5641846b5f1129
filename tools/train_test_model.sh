#!/usr/bin/env bash
# Train a small model on CPU from the shared genomes (the recipe for machines without a GPU).
# It wrote the first default model; the shipped assets/models/hytax-mini is now the "small"
# model of tools/train_gpu.sh, trained on this script's fragments (WORKDIR/fragments).
#
#   tools/train_test_model.sh [DATA_DIR]      (default DATA_DIR: ../shared/data)
#
# Environment: THREADS (default 2), WORKDIR (default build/hytax-mini), OUT (default
# build/hytax-mini/model), HYTAX (the hytax command, default .venv/bin/hytax or hytax on PATH),
# PRETRAIN_MIN / FINETUNE_MIN (wall-clock caps in minutes, default 15 and 60: about 80 minutes in
# all on 2 idle CPU threads; fine-tuning stops earlier at the end of epoch 2).
# RESUME=1 continues fine-tuning from WORKDIR's checkpoint for FINETUNE_MIN more minutes (no new
# fragments, no pre-training), then evaluates again. The first default model was trained in two
# runs: FINETUNE_MIN=45, then RESUME=1 FINETUNE_MIN=15 to the end of epoch 2 (4306 s in all).
#
# Steps: sample fragments (a non-similar split: whole genera held out for the test set, plus the
# archaeon Methanohalophilus so that every superkingdom is tested), pre-train a small encoder
# (MLM + NSP), fine-tune the all-in-one head, then classify the held-out test fragments and
# evaluate them. The model is small enough to ship (~3 MB) and far smaller and less trained than
# the paper's: see docs/benchmark.md for what it can and cannot do.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
data=${1:-../shared/data}
threads=${THREADS:-2}
work=${WORKDIR:-build/hytax-mini}
out=${OUT:-$work/model}
if [[ -n ${HYTAX:-} ]]; then hytax=$HYTAX
elif [[ -x .venv/bin/hytax ]]; then hytax=.venv/bin/hytax
else hytax=hytax; fi
export OMP_NUM_THREADS=$threads

# Architecture: 3 blocks, hidden 128, 4 heads, feed-forward 512, window 1500 nt. On 2 CPU threads
# this trains at about half the rate of 2 blocks of hidden 64 (small matrices use the cores
# poorly), so it is the better use of the same minutes.
arch=(--hidden 128 --layers 3 --heads 4 --intermediate 512 --dropout 0.05 --window-nt 1500)
start=$(date +%s)

finetune_extra=()
if [[ ${RESUME:-0} == 1 ]]; then
    finetune_extra=(--resume)
else
rm -rf "$work"
mkdir -p "$work"
echo "== fragments" >&2
# Mostly short reads (150-300 nt, 3 parts) with full 1500-nt windows (1 part); small genomes
# (viruses) are sampled up to 8x over so that their superkingdom is not starved.
"$hytax" fragments --genomes "$data/genomes.tsv" --genome-dir "$data/genomes" \
    --taxdump "$data/taxdump" --outdir "$work/fragments" \
    --length 150:300 1500 --length-weights 3 1 \
    --per-superkingdom 40000 --per-genus 3000 --max-coverage 8 \
    --split nonsimilar --test-fraction 0.2 --val-fraction 0.03 --holdout-genus 2175 --seed 11

echo "== pretrain" >&2
"$hytax" pretrain --data "$work/fragments" --outdir "$work/pretrain" "${arch[@]}" \
    --batch-size 32 --lr 1e-3 --warmup 0.05 --max-steps 1100 --eval-every 400 --patience 3 \
    --time-limit "${PRETRAIN_MIN:-15}" --threads "$threads" --seed 7 --progress off --log-every 50

fi

echo "== finetune" >&2
"$hytax" finetune --data "$work/fragments" --pretrained "$work/pretrain" --outdir "$out" \
    --workdir "$work/finetune" --taxdump "$data/taxdump" \
    --taxonomy-release "NCBI taxdump (2013 + 14 later nodes)" \
    --head all_in_one --min-class-count 60 \
    --batch-size 32 --lr 1e-3 --warmup 0.02 --schedule linear --max-epochs 2 \
    --eval-every 500 --patience 4 --time-limit "${FINETUNE_MIN:-60}" \
    --threads "$threads" --seed 7 --progress off --log-every 50 "${finetune_extra[@]}" \
    --name hytax-mini \
    --description "Small default model (3 blocks, hidden 128, ~1 CPU-hour of training): \
superkingdom well above chance on unseen genera, phylum and genus weak. Trained on fragments \
(150-300 nt and 1500 nt) of the 113 genomes in shared/data, 14 genera held out for testing \
(non-similar split)."

echo "== held-out test fragments" >&2
"$hytax" predict --model "$out" --input "$work/fragments/test.fa" \
    --output "$work/test.predictions.tsv" --probabilities "$work/test.probabilities.jsonl" \
    --threads "$threads" --progress off
"$hytax" evaluate --predictions "$work/test.predictions.tsv" \
    --truth "$work/fragments/test.labels.tsv" --probabilities "$work/test.probabilities.jsonl" \
    --model "$out" --outdir "$work/evaluation"

py=${PYTHON:-python3}
[[ -x .venv/bin/python && -z ${PYTHON:-} ]] && py=.venv/bin/python
"$py" tools/record_heldout.py "$out" "$work/fragments" "$work/evaluation/summary.json" \
    "$(( $(date +%s) - start ))"
chmod a+r "$out"/*
cat "$work/evaluation/summary.md"
echo "done in $(( $(date +%s) - start )) s; model in $out" >&2
