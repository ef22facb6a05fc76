#!/usr/bin/env bash
# Makes examples/report-learning-curves.png, the picture in the README's "See a sweep": the ConvNet ASHA example
# sweep on the CPU, then `torchtrials report` on it; the learning curves with ASHA's stops are copied here.
#   bash examples/readme-picture.sh                      # builds and runs the CLI (Release)
#   TORCHTRIALS_CLI=path/to/torchtrials bash examples/readme-picture.sh   # an existing build instead
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${TORCHTRIALS_CLI:-}" ]; then cli=("$TORCHTRIALS_CLI"); else cli=(dotnet run --project src/Runner/Cli -c Release --); fi
"${cli[@]}" run examples/digits-convnet-asha.yaml --results-dir "$work" --name readme --plain > "$work/run.log"
"${cli[@]}" report "$work/readme" > "$work/report.log"
cp "$work/readme/report/learning_curves.png" examples/report-learning-curves.png
echo "wrote examples/report-learning-curves.png ($(stat -c %s examples/report-learning-curves.png) bytes)"
