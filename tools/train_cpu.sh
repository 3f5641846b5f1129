#!/usr/bin/env bash
# Train a BERTax model on CPU from the shared genomes (the recipe for machines without a GPU):
# about 85 minutes on 2 cores, 70 of them fine-tuning.
#
#   tools/train_cpu.sh [DATA_DIR]      (default DATA_DIR: ../shared/data)
#
# Environment (defaults in brackets): THREADS [2], WORKDIR [build/cpu], OUT [WORKDIR/model],
# START [assets/models/hytax-mini: the encoder fine-tuning starts from, a model folder or a
# `hytax pretrain` output], FINETUNE_MIN [70], LR [5e-4], HYTAX [.venv/bin/hytax or hytax].
# RESUME=1 continues fine-tuning from WORKDIR's last checkpoint (one every 10 minutes) for
# FINETUNE_MIN more minutes, then tests and publishes as below.
#
# Steps: the fragments of tools/genus_split.sh (START's genus classes kept in training); START's
# encoder fine-tuned with a new all-in-one head (reverse-complement augmentation, class weights,
# learning rate decayed over the time limit), then temperature and abstention thresholds fitted
# on the validation genera; the test genera's 150 and 1500-nt fragments classified and
# evaluated; the model folder published in OUT with its metrics, figures, genus lists and a
# README.md card.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
data=${1:-../shared/data}
threads=${THREADS:-2}
work=${WORKDIR:-build/cpu}
out=${OUT:-$work/model}
start_from=${START:-assets/models/hytax-mini}
minutes=${FINETUNE_MIN:-70}
if [[ -n ${HYTAX:-} ]]; then hytax=$HYTAX
elif [[ -x .venv/bin/hytax ]]; then hytax=.venv/bin/hytax
else hytax=hytax; fi
export HYTAX=$hytax OMP_NUM_THREADS=$threads
begin=$(date +%s)

resume=()
if [[ ${RESUME:-0} == 1 ]]; then
    resume=(--resume)
else
    rm -rf "$work"
    echo "== fragments ($(date +%T))" >&2
    classes=()
    [[ -f $start_from/config.json ]] && classes=("$start_from")
    tools/genus_split.sh "$data" "$work" "${classes[@]}"
fi

echo "== finetune ($(date +%T))" >&2
"$hytax" finetune --data "$work/fragments" --pretrained "$start_from" --outdir "$work/trained" \
    --workdir "$work/finetune" --taxdump "$data/taxdump" \
    --taxonomy-release "NCBI taxdump (2013 + 14 later nodes)" \
    --head all_in_one --min-class-count 60 --batch-size 32 --lr "${LR:-5e-4}" --warmup 0.02 \
    --decay-by-time --time-limit "$minutes" --max-epochs 3 --eval-minutes 25 --val-max 4000 \
    --patience 3 --checkpoint-minutes 10 --threads "$threads" --seed 7 --progress off \
    --log-every 50 "${resume[@]}" --name hytax-mini \
    --description "Small BERTax (6 blocks, hidden 128, 4 heads, feed-forward 512): the encoder \
of $(basename "$start_from") fine-tuned for $minutes minutes on 2 CPU cores on fragments \
(150-300 and 1500 nt) of every genome in shared/data, split by genus; temperature and \
abstention thresholds fitted on the validation genera, figures from the test genera."

echo "== test genera ($(date +%T))" >&2
test=$work/test-fragments
"$hytax" predict --model "$work/trained" --input "$test/test.fa" \
    --output "$work/test.predictions.tsv" --probabilities "$work/test.probabilities.jsonl" \
    --threads "$threads" --progress off
cp "$work/finetune/metrics.jsonl" "$work/finetune.metrics.jsonl"
rm -rf "$out"
"$hytax" evaluate --predictions "$work/test.predictions.tsv" --truth "$test/test.labels.tsv" \
    --probabilities "$work/test.probabilities.jsonl" --model "$work/trained" \
    --taxdump "$test/taxdump" --outdir "$work/evaluation" --card "$out" \
    --fragments "$work/fragments" --training-log "$work/finetune.metrics.jsonl"
cat "$work/evaluation/summary.md"
echo "done in $(( $(date +%s) - begin )) s; model in $out" >&2
