#!/usr/bin/env bash
# Train BERTax models on one GPU, side by side, in one run of at most 10 minutes.
#
#   tools/train_gpu.sh DATA_DIR OUTDIR        (DATA_DIR: a genomes.tsv folder, e.g. ../shared/data)
#
# The fragments are tools/genus_split.sh's, with the shipped model's genus classes kept in
# training, so the test genera are the ones tools/train_cpu.sh and benchmarks/unseen_genera.py
# test on. Two models train at once (one GPU is far from full with either alone):
#   paper  12 blocks, hidden 250, 5 heads, feed-forward 1024: the paper's size (~37 MB)
#   small  6 blocks, hidden 128, 4 heads, feed-forward 512: small enough to ship (~5 MB)
# Each is pre-trained (MLM + NSP) for PRETRAIN_MIN minutes, then fine-tuned (all-in-one head,
# class weights, reverse-complement augmentation) for FINETUNE_MIN minutes and RESUME_MIN more at
# half the learning rate, in bf16 mixed precision with the learning rate decayed over each time
# limit; after each fine-tuning leg, temperature and abstention thresholds are fitted on the
# validation genera. Each model is then tested on the test genera and published in
# OUTDIR/<model>/model with its card; the prediction throughput on this GPU is measured last.
# Every stage writes a checkpoint each minute: run the script again on the same OUTDIR after an
# interruption and each stage continues where it stopped (time limits count all runs together).
#
# Environment (defaults in brackets): PRETRAIN_MIN [2.0], FINETUNE_MIN [2.5], RESUME_MIN [1.5],
# MODELS ["paper small"], PRETRAIN_BATCH [256], FINETUNE_BATCH [128], DEVICE [cuda; cpu for a dry
# run, with PRETRAIN_BATCH=16 FINETUNE_BATCH=16: batches of 256 need over 16 GB of host memory
# there], SPLIT_MODEL [assets/models/hytax-mini], HYTAX [python3 -m hytax.cli], PYTHON [python3].
set -euo pipefail

data=$1 out=$2
read -r -a hytax <<< "${HYTAX:-python3 -m hytax.cli}"
py=${PYTHON:-python3}
tools=$(cd "$(dirname "$0")" && pwd)
device=${DEVICE:-cuda}
start=$(date +%s)
pretrain_min=${PRETRAIN_MIN:-2.0} finetune_min=${FINETUNE_MIN:-2.5} resume_min=${RESUME_MIN:-1.5}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} HYTAX="${hytax[*]}" PYTHON=$py
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [[ ! -s $out/test-fragments/fragments.json ]]; then
    echo "== fragments ($(date +%T))"
    "$tools/genus_split.sh" "$data" "$out" "${SPLIT_MODEL:-$tools/../assets/models/hytax-mini}"
fi
frag=$out/fragments test=$out/test-fragments

# Per model: architecture, pre-training and fine-tuning learning rates, description.
model_spec() {
    case $1 in
        paper) arch=(--hidden 250 --layers 12 --heads 5 --intermediate 1024) lrs=(4e-4 2e-4)
               about="Paper-size BERTax (12 blocks, hidden 250, 5 heads, feed-forward 1024)" ;;
        small) arch=(--hidden 128 --layers 6 --heads 4 --intermediate 512) lrs=(1e-3 5e-4)
               about="Small BERTax (6 blocks, hidden 128, 4 heads, feed-forward 512)" ;;
        *) echo "unknown model '$1' (paper, small)" >&2; return 1 ;;
    esac
}

train_one() {
    local name=$1 work=$out/$1 arch lrs about
    model_spec "$name"
    mkdir -p "$work"
    local common=(--precision bf16 --decay-by-time --time-limit-total --device "$device"
                  --progress off --log-every 100 --seed 7 --patience 100 --checkpoint-minutes 1)
    # A stage that finished leaves a mark and is skipped when the script runs again; one that
    # was interrupted resumes from its checkpoint (leg 1 must not meet leg 2's checkpoint, whose
    # learning rate differs: it would start over).
    if [[ ! -e $work/pretrain.done ]]; then
        echo "== $name: pretrain ($(date +%T))"
        "${hytax[@]}" pretrain --data "$frag" --outdir "$work/pretrain" "${arch[@]}" \
            --dropout 0.05 --window-nt 1500 --batch-size "${PRETRAIN_BATCH:-256}" \
            --lr "${lrs[0]}" --warmup 200 --max-epochs 1000 --time-limit "$pretrain_min" \
            --val-max 4000 --resume auto "${common[@]}"
        touch "$work/pretrain.done"
    fi
    # Fine-tuning in two legs: the second continues from the first's checkpoint at half the
    # learning rate (a warm restart of the decay); its time limit counts both legs.
    local leg lr minutes resume
    for leg in 1 2; do
        if [[ $leg == 1 ]]; then lr=${lrs[1]} minutes=$finetune_min resume=auto
        else lr=$(awk "BEGIN{print ${lrs[1]} / 2}") resume=yes
             minutes=$(awk "BEGIN{print $finetune_min + $resume_min}"); fi
        [[ $leg == 2 && $resume_min == 0 || -e $work/finetune.leg$leg.done ]] && continue
        echo "== $name: finetune, leg $leg ($(date +%T))"
        "${hytax[@]}" finetune --data "$frag" --pretrained "$work/pretrain" \
            --outdir "$work/trained" --workdir "$work/finetune" --taxdump "$frag/taxdump" \
            --taxonomy-release "NCBI taxdump (2013 + 14 later nodes)" \
            --head all_in_one --min-class-count 60 --batch-size "${FINETUNE_BATCH:-128}" \
            --lr "$lr" --warmup 200 --max-epochs 1000 --time-limit "$minutes" --val-max 4000 \
            --resume "$resume" "${common[@]}" --name "hytax-$name-gpu" \
            --description "$about, trained on one GPU ($pretrain_min min MLM+NSP, \
$finetune_min + $resume_min min fine-tuning, bf16) on fragments (150-300 and 1500 nt) of every \
genome in shared/data, split by genus; temperature and abstention thresholds fitted on the \
validation genera, figures from the test genera."
        touch "$work/finetune.leg$leg.done"
    done
    echo "== $name: test genera ($(date +%T))"
    "${hytax[@]}" predict --model "$work/trained" --input "$test/test.fa" --device "$device" \
        --output "$work/test.predictions.tsv" --probabilities "$work/test.probabilities.jsonl" \
        --progress off
    cp "$work/pretrain/metrics.jsonl" "$work/pretrain.metrics.jsonl"
    cp "$work/finetune/metrics.jsonl" "$work/finetune.metrics.jsonl"
    rm -rf "$work/model"
    "${hytax[@]}" evaluate --predictions "$work/test.predictions.tsv" \
        --truth "$test/test.labels.tsv" --probabilities "$work/test.probabilities.jsonl" \
        --model "$work/trained" --taxdump "$test/taxdump" --outdir "$work/evaluation" \
        --card "$work/model" --fragments "$frag" \
        --training-log "$work/pretrain.metrics.jsonl" "$work/finetune.metrics.jsonl"
    rm "$work/test.probabilities.jsonl"
    echo "== $name: done ($(date +%T), $(( $(date +%s) - start )) s since the start)"
}

pids=()
for name in ${MODELS:-paper small}; do
    train_one "$name" > "$out/$name.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
tail -n 30 "$out"/*.log

echo "== prediction throughput on this GPU ($(date +%T))"
# A measurement, not part of training: cut short at 90 s (a CPU dry run takes longer), it
# leaves the models as they are.
timeout 90 "$py" "$tools/../benchmarks/predict_throughput.py" \
    --fasta "$test/test.fa" --seconds 4 --device "$device" | tee "$out/throughput.txt" ||
    echo "throughput measurement stopped or failed; the models are in $out/*/model"
echo "== done in $(( $(date +%s) - start )) s"
exit $status
