#!/usr/bin/env bash
# Every `lcsc analyze` on a finished `lcsc demo` run (full or --quick), at default sizes: docs/analysis is made with this.
#   bash scripts/analyze_demo.sh [RUN=runs/demo] [OUT=docs/analysis]
#   ANALYZE_SMALL=1 bash scripts/analyze_demo.sh RUN OUT   # every analysis at tiny sizes: a smoke test, not results
#     (about 110 CPU-seconds on a `lcsc demo --quick` run, most of it 13 lcsc start-ups; under a minute on 2 free cores)
# The window ends and steps come from RUN/report/config.json (iterations = the end, early_point = the early window).
# Searches: RUN/search/{dm,cm-ct}-{EARLY,END}-anchored (Alg. 1, anchored, guarded), …-grad (gradient, anchored) and
# dm-END-grad-nfe4; `lcsc analyze` reads the export of each (the window part, the anchors' weights by name).
# The models the analyses compare go to $SCRATCH (default runs/analysis): each model's last weights, its LCSC export
# and its EMA* at END, copied from RUN/models (written by the demo); a run without RUN/models gets them exported
# here (EMA* with `lcsc ema` / the EMA snapshot, LCSC with `lcsc merge` of the search's exported coefficients, its
# anchors rebuilt from their specs). Stack caches and the ablation's searches stay in $SCRATCH too; OUT gets the
# json/png/md of each analysis, $SCRATCH/logs the output of each. The analyses run two at a time (JOBS=N changes it;
# one torch thread each, so every result is the same whatever runs beside it). About 5 minutes on 2 CPU cores.
set -euo pipefail
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
RUN=$(absolute "${1:-runs/demo}")  # (relative paths are taken from where the script is called, before the cd)
[[ -n ${2:-} ]] && OUT=$(absolute "$2")
[[ -n ${SCRATCH:-} ]] && M=$(absolute "$SCRATCH")
[[ -n ${CLTS_RUN:-} ]] && CLTS_RUN=$(absolute "$CLTS_RUN")
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || RUN=$PWD/runs/demo
OUT=${OUT:-$PWD/docs/analysis}
M=${M:-$PWD/runs/analysis}
L=.venv/bin/lcsc
PY=.venv/bin/python
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # the small models sample fastest on one thread per process
t0=$SECONDS
stamp() { echo "== $1 done at $((SECONDS - t0)) s"; }

if [[ ! -f $RUN/report/config.json ]]; then
  echo "analyze_demo.sh: $RUN/report/config.json: no such file (give a finished \`lcsc demo -o RUN\` folder)" >&2
  exit 2
fi
read -r END EARLY WINDOW EXPORT < <($PY -c '
import json, sys
c = json.load(open(sys.argv[1]))
print(c["iterations"], c["early_point"], c["window"], c.get("export", "alg1"))' "$RUN"/report/config.json) ||
  { echo "analyze_demo.sh: $RUN/report/config.json: cannot read iterations, early_point and window" >&2; exit 2; }
S=$RUN/search
for f in "$S"/{dm,cm-ct}-{"$EARLY","$END"}-anchored; do
  [[ -f $f/journal.jsonl ]] || { echo "analyze_demo.sh: $f: no journal.jsonl (not the demo's search layout)" >&2; exit 2; }
done
GRAD=()
for f in "$S"/{dm,cm-ct}-{"$EARLY","$END"}-grad "$S"/dm-"$END"-grad-nfe4; do
  [[ -f $f/gradient.jsonl ]] && GRAD+=("$f")
done
EXPORTED=anchored  # the searches behind the models' LCSC export (config "export": alg1 or gradient)
if [[ $EXPORT == gradient && -f $S/dm-$END-grad/gradient.jsonl ]]; then EXPORTED=grad; fi

# sizes: the defaults, or tiny ones with ANALYZE_SMALL=1 (each an option of its subcommand)
if [[ -n ${ANALYZE_SMALL:-} && ${ANALYZE_SMALL} != 0 ]]; then
  SMALL=1
  LANDSCAPE=(--grid 3 --range 0:1 --samples 32 --nfe 1)
  EMA_GRID=(--points "$END" --sigma-rels 0.1 --samples 16 --eval-samples 16 --eval-seeds 1 --nfe 1 --no-progress)
  ABLATION=(--quick --factors sigma --search-seeds 2 --nfe 1)
  CONSISTENCY=(--quick --dm-nfe 1)
  LOSS=(--quick --no-progress)
  HESSIAN=(--quick --k 1 --ncv 3 --maxiter 2 --batch 4 --no-progress)
  SEEDS=(0 1)
else
  SMALL=0
  LANDSCAPE=()
  EMA_GRID=()
  ABLATION=()
  CONSISTENCY=()
  LOSS=()
  HESSIAN=()
  SEEDS=(0 1 2)
fi
echo "analyze_demo.sh: $RUN (window ends $EARLY and $END, LCSC export: $EXPORT), small sizes: $SMALL"
mkdir -p "$M"/logs "$OUT"

# the models at END: last weights, EMA*, LCSC (the export) and, when the demo wrote it, the other method's LCSC
cp "$RUN"/dm/last.safetensors "$M"/dm-last.safetensors
cp "$RUN"/cm-ct/last.safetensors "$M"/cm-last.safetensors
OTHER=()
if [[ -d $RUN/models ]]; then
  for pair in dm:dm cm-ct:cm; do
    run=${pair%%:*} short=${pair##*:}
    cp "$RUN"/models/"$run"-ema-star-"$END".safetensors "$M"/"$short"-ema-star.safetensors
    cp "$RUN"/models/"$run"-lcsc-"$END".safetensors "$M"/"$short"-lcsc.safetensors
    for kind in lcsc-alg1 lcsc-grad; do
      if [[ -f $RUN/models/$run-$kind-$END.safetensors ]]; then
        cp "$RUN"/models/"$run"-"$kind"-"$END".safetensors "$M"/"$short"-"$kind".safetensors
        OTHER+=("$M"/"$short"-"$kind".safetensors)
      fi
    done
  done
else  # an older run without RUN/models: export them here
  read -r DM_STAR CM_STAR < <($PY -c '
import json, sys
star = json.load(open(sys.argv[1]))["ema_star"]
print(star["dm"][sys.argv[2]], star["cm"][sys.argv[2]])' "$RUN"/report/report.json "$END")
  export_star() {  # RUN_DIR NAME OUT_FILE
    if [[ $2 == hl-* ]]; then cp "$1/ema/$2/ema-$(printf %09d "$END").safetensors" "$3"
    else $L ema "$1" --sigma-rel "${2#sigma-}" --step "$END" -o "$3" > /dev/null; fi
  }
  export_star "$RUN"/dm "$DM_STAR" "$M"/dm-ema-star.safetensors
  export_star "$RUN"/cm-ct "$CM_STAR" "$M"/cm-ema-star.safetensors
  for pair in dm:dm cm-ct:cm; do
    run=${pair%%:*} short=${pair##*:}
    $PY -m lcsc.cli.export_coefficients "$S"/"$run"-"$END"-"$EXPORTED" -o "$M"/lcsc-"$short".json
    $L merge "$RUN"/"$run"/windows/"$END" --coeffs "$M"/lcsc-"$short".json --cache-dir "$M"/stack-cache \
      -o "$M"/"$short"-lcsc.safetensors > /dev/null
  done
fi
stamp "models at $END"

# the analyses, $JOBS at a time, each with its output in $M/logs/NAME.log; a failure stops the script with its log's end
fig5() {  # LCSC Fig. 5: the Alg. 1 exports, then the gradient exports (window part vs step; anchors' weights by name)
  $L analyze coefficients "$S"/dm-{"$EARLY","$END"}-anchored "$S"/cm-ct-{"$EARLY","$END"}-anchored \
    --ema-star "$RUN"/report/report.json -o "$OUT"/coefficients
  if [[ ${#GRAD[@]} -gt 0 ]]; then
    $L analyze coefficients "${GRAD[@]}" --ema-star "$RUN"/report/report.json -o "$OUT"/coefficients-grad
  fi
}
ablation() {  # the search ablation, then: do searches with different seeds agree? (the default setting, same window)
  $L analyze ablation-search "$RUN"/dm/windows/"$EARLY" "${ABLATION[@]}" -o "$M"/ablation-search
  mkdir -p "$OUT"/ablation-search
  cp "$M"/ablation-search/ablation-search.{json,png,md,config.json} "$OUT"/ablation-search/
  $L analyze coefficients "${SEEDS[@]/#/$M/ablation-search/searches/default/seed-}" -o "$OUT"/coefficients-seeds
}
loss_landscapes() {
  $L analyze loss-landscape --pair "$M"/dm-last.safetensors,"$M"/dm-ema-star.safetensors \
    --pair "$M"/dm-ema-star.safetensors,"$M"/dm-lcsc.safetensors "${LOSS[@]}" -o "$OUT"/loss-landscape
  $L analyze loss-landscape --pair "$M"/dm-last.safetensors,"$M"/dm-ema-star.safetensors \
    --pair "$M"/dm-ema-star.safetensors,"$M"/dm-lcsc.safetensors --timesteps clts "${LOSS[@]}" \
    -o "$OUT"/loss-landscape-clts
}
# optional: uniform vs CLTS *training* — a DM trained as the demo's but with CLTS timesteps, e.g.
#   lcsc train dm --iterations 3200 --batch-size 64 --channels 32 --seed 0 --timesteps clts --record-window 800 \
#     --record-interval 100 --ema-half-life 160 --sample-count 0 -o runs/dm-clts;  CLTS_RUN=runs/dm-clts bash …
clts() {
  $L analyze hessian "$M"/dm-last.safetensors "$CLTS_RUN"/last.safetensors "${HESSIAN[@]}" \
    -o "$OUT"/hessian-training-timesteps
  $L analyze loss-landscape --pair "$M"/dm-last.safetensors,"$CLTS_RUN"/last.safetensors "${LOSS[@]}" \
    -o "$OUT"/loss-landscape-training-timesteps
}
JOBS=${JOBS:-2}
running=0
step() {  # NAME CMD…: CMD in the background (at most $JOBS at once), its output in $M/logs/NAME.log
  if (( running >= JOBS )); then wait -n || exit $?; running=$((running - 1)); fi
  local name=$1
  shift
  ( set +e  # (errexit is on inside CMD: a function stops at its first failing command)
    ( set -e; "$@" ) > "$M/logs/$name.log" 2>&1
    rc=$?
    if (( rc != 0 )); then
      echo "== $name FAILED (exit $rc); the end of $M/logs/$name.log:" >&2
      tail -n 15 "$M/logs/$name.log" >&2
      exit "$rc"
    fi
    stamp "$name" ) &
  running=$((running + 1))
}
set -m  # each step in its own process group: a failure stops the steps still running beside it, children included
trap 'for job in $(jobs -p); do kill -- -"$job" 2> /dev/null || true; done' EXIT
step ablation-search ablation
step ema-grid-dm $L analyze ema-grid "$RUN"/dm "${EMA_GRID[@]}" -o "$OUT"/ema-grid-dm
step ema-grid-cm $L analyze ema-grid "$RUN"/cm-ct "${EMA_GRID[@]}" -o "$OUT"/ema-grid-cm
step landscape $L analyze landscape "$RUN"/dm/windows/"$EARLY" \
  --points lcsc="$S"/dm-"$EARLY"-"$EXPORTED",ema=ema:$((WINDOW / 4)),last=last "${LANDSCAPE[@]}" -o "$OUT"/landscape
step loss-landscape loss_landscapes
step consistency $L analyze consistency "$M"/{dm,cm}-{last,ema-star,lcsc}.safetensors "${OTHER[@]}" \
  "${CONSISTENCY[@]}" -o "$OUT"/consistency
step hessian $L analyze hessian "$M"/dm-last.safetensors "$M"/dm-ema-star.safetensors "$M"/dm-lcsc.safetensors \
  "${HESSIAN[@]}" -o "$OUT"/hessian
step coefficients fig5
[[ -z ${CLTS_RUN:-} ]] || step "uniform-vs-clts-training" clts
while (( running > 0 )); do wait -n || exit $?; running=$((running - 1)); done
echo "analyze_demo.sh: every analysis is in $OUT (logs: $M/logs) after $((SECONDS - t0)) s"
