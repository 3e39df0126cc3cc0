#!/usr/bin/env bash
# Every `lcsc analyze` on a finished `lcsc demo` run, at default sizes: docs/analysis is made with this.
#   bash scripts/analyze_demo.sh [RUN=runs/demo] [OUT=docs/analysis]
# It first exports the models the analyses compare into $SCRATCH (default runs/analysis): each model's last weights,
# its LCSC merge at 3200 (the search's best coefficients) and its EMA* at 3200 (the report's choice; a post-hoc
# σ_rel is reconstructed with `lcsc ema`). Search journals and stack caches stay in $SCRATCH too; OUT gets the
# json/png/md of each analysis. About 5 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/demo}
OUT=${2:-docs/analysis}
L=.venv/bin/lcsc
M=${SCRATCH:-runs/analysis}
mkdir -p "$M" "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # the small models sample fastest on one thread per process
t0=$SECONDS
stamp() { echo "== $1 done at $((SECONDS - t0)) s"; }

$L analyze coefficients "$RUN"/search/dm-800 "$RUN"/search/dm-3200 "$RUN"/search/cm-ct-800 "$RUN"/search/cm-ct-3200 \
  --ema-star "$RUN"/report/report.json -o "$OUT"/coefficients
stamp coefficients

# the exported models: LCSC (DM and CM at 3200) and EMA* (both at 3200)
.venv/bin/python - "$OUT" "$RUN" "$M" <<'PY'
import json, sys
from pathlib import Path
out, run, models = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
for s in json.loads((out / "coefficients/coefficients.json").read_text())["searches"]:
    (models / f"lcsc-{s['name']}.json").write_text(json.dumps({"steps": s["steps"], "coefficients": s["coefficients"]}))
star = json.loads((run / "report/report.json").read_text())["ema_star"]
(models / "ema-star.txt").write_text(f"{star['dm']['3200']} {star['cm']['3200']}\n")
PY
read -r DM_STAR CM_STAR < "$M"/ema-star.txt
export_star() {  # RUN_DIR NAME OUT_FILE
  if [[ $2 == hl-* ]]; then cp "$1/ema/$2/ema-000003200.safetensors" "$3"
  else $L ema "$1" --sigma-rel "${2#sigma-}" --step 3200 -o "$3" > /dev/null; fi
}
export_star "$RUN"/dm "$DM_STAR" "$M"/dm-ema-star.safetensors
export_star "$RUN"/cm-ct "$CM_STAR" "$M"/cm-ema-star.safetensors
cp "$RUN"/dm/last.safetensors "$M"/dm-last.safetensors
cp "$RUN"/cm-ct/last.safetensors "$M"/cm-last.safetensors
$L merge "$RUN"/dm/windows/3200 --coeffs "$M"/lcsc-dm-3200.json -o "$M"/dm-lcsc.safetensors > /dev/null
$L merge "$RUN"/cm-ct/windows/3200 --coeffs "$M"/lcsc-cm-ct-3200.json -o "$M"/cm-lcsc.safetensors > /dev/null
stamp "model export"

$L analyze landscape "$RUN"/dm/windows/800 --points lcsc="$RUN"/search/dm-800,ema=ema:200,last=last -o "$OUT"/landscape
stamp landscape
$L analyze ema-grid "$RUN"/dm -o "$OUT"/ema-grid-dm
$L analyze ema-grid "$RUN"/cm-ct -o "$OUT"/ema-grid-cm
stamp ema-grid
$L analyze ablation-search "$RUN"/dm/windows/800 -o "$M"/ablation-search
mkdir -p "$OUT"/ablation-search
cp "$M"/ablation-search/ablation-search.{json,png,md,config.json} "$OUT"/ablation-search/
# do searches with different seeds agree? (the default setting's three search seeds, same window)
$L analyze coefficients "$M"/ablation-search/searches/default/seed-{0,1,2} -o "$OUT"/coefficients-seeds
stamp ablation-search
$L analyze consistency "$M"/{dm,cm}-{last,ema-star,lcsc}.safetensors -o "$OUT"/consistency
stamp consistency
$L analyze loss-landscape --pair "$M"/dm-last.safetensors,"$M"/dm-ema-star.safetensors \
  --pair "$M"/dm-ema-star.safetensors,"$M"/dm-lcsc.safetensors -o "$OUT"/loss-landscape
$L analyze loss-landscape --pair "$M"/dm-last.safetensors,"$M"/dm-ema-star.safetensors \
  --pair "$M"/dm-ema-star.safetensors,"$M"/dm-lcsc.safetensors --timesteps clts -o "$OUT"/loss-landscape-clts
stamp loss-landscape
$L analyze hessian "$M"/dm-last.safetensors "$M"/dm-ema-star.safetensors "$M"/dm-lcsc.safetensors -o "$OUT"/hessian
stamp hessian

# optional: uniform vs CLTS *training* — a DM trained as the demo's but with CLTS timesteps, e.g.
#   lcsc train dm --iterations 3200 --batch-size 64 --channels 32 --seed 0 --timesteps clts --record-window 800 \
#     --record-interval 100 --ema-half-life 160 --sample-count 0 -o runs/dm-clts;  CLTS_RUN=runs/dm-clts bash …
if [[ -n ${CLTS_RUN:-} ]]; then
  $L analyze hessian "$M"/dm-last.safetensors "$CLTS_RUN"/last.safetensors -o "$OUT"/hessian-training-timesteps
  $L analyze loss-landscape --pair "$M"/dm-last.safetensors,"$CLTS_RUN"/last.safetensors \
    -o "$OUT"/loss-landscape-training-timesteps
  stamp "uniform vs CLTS training"
fi
