#!/usr/bin/env bash
# The fragments both training recipes (tools/train_cpu.sh, tools/train_gpu.sh) train and test on.
#
#   tools/genus_split.sh DATA_DIR WORKDIR [MODEL_DIR]
#
# WORKDIR/fragments: every genome of DATA_DIR (a genomes.tsv folder), split by genus: a quarter
# of each superkingdom's genera for testing, 15 % for validation, the genus classes of MODEL_DIR
# (if given) always in training, so that the test genera are genera neither that model nor the
# new one saw. Sampled evenly per genus within each superkingdom (small viral genomes up to 8x
# over), 150-300 nt and 1500 nt reads in 3:1.
# WORKDIR/test-fragments: the same split, 120 fragments per genus of exactly 150 and 1500 nt
# (what benchmarks/unseen_genera.py draws); its test.fa is what the recipes test on.
#
# Environment: HYTAX [.venv/bin/hytax or hytax on PATH], PYTHON [python3].
set -euo pipefail

data=$1 work=$2 model=${3:-}
read -r -a hytax <<< "${HYTAX:-$( [[ -x .venv/bin/hytax ]] && echo .venv/bin/hytax || echo hytax)}"
keep=()
if [[ -n $model ]]; then
    read -r -a keep <<< "$("${PYTHON:-python3}" -c 'import json, sys
config = json.load(open(sys.argv[1]))
print(" ".join(str(c["taxid"]) for c in config["classes"]["genus"] if c["taxid"]))
' "$model/config.json")"
fi
split=(--split genus --test-fraction 0.25 --val-fraction 0.15 --drop-without-genus --seed 1)
[[ ${#keep[@]} -gt 0 ]] && split+=(--train-genus "${keep[@]}")
mkdir -p "$work"
"${hytax[@]}" fragments --genomes "$data/genomes.tsv" --outdir "$work/fragments" "${split[@]}" \
    --length 150:300 1500 --length-weights 3 1 \
    --per-superkingdom 40000 --per-genus 3000 --max-coverage 8
"${hytax[@]}" fragments --genomes "$data/genomes.tsv" --outdir "$work/test-fragments" \
    "${split[@]}" --length 150 1500 --per-superkingdom 0 --per-genus 120
