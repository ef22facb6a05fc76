#!/usr/bin/env bash
# GPU bring-up, offline (issue 12): run on a GPU machine from a copy of the working tree plus its build output
# (`dotnet build TorchTrials.sln` and `dotnet build -c Release benchmarks/TorchTrials.Benchmarks` done elsewhere).
# 1. the NVML inventory; 2. whether TorchSharp's native shim (built against LibTorch 2.10) links against this
# machine's PyTorch libraries, listing every symbol it needs that they do not define; 3. when it loads, the CUDA
# path tests and benchmark (c). No restore, no network. Finishes in under 4 minutes (each step has a timeout).
# Options (environment): TORCH_LIB_DIR (default: the lib folder of python3's torch), PYTHON (python3).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$SECONDS
summary=()
say() { printf '%s\n' "$*"; }
left() { echo $(( 230 - (SECONDS - started) )); }

say "== 1. NVML inventory"
if command -v nvidia-smi > /dev/null; then
  timeout 20 nvidia-smi --query-gpu=index,name,memory.total,memory.used,driver_version,compute_cap --format=csv \
    && summary+=("nvml: $(nvidia-smi --query-gpu=name --format=csv,noheader | sort | uniq -c | sed 's/^ *//' | paste -sd ';')") \
    || summary+=("nvml: nvidia-smi failed")
elif ldconfig -p 2> /dev/null | grep -q libnvidia-ml.so.1; then
  "${PYTHON:-python3}" - << 'PY' && summary+=("nvml: read through libnvidia-ml") || summary+=("nvml: libnvidia-ml present but unreadable")
import ctypes
n = ctypes.CDLL("libnvidia-ml.so.1"); assert n.nvmlInit_v2() == 0
c = ctypes.c_uint(); n.nvmlDeviceGetCount_v2(ctypes.byref(c))
class M(ctypes.Structure): _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]
for i in range(c.value):
    h = ctypes.c_void_p(); n.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(h))
    name = ctypes.create_string_buffer(96); n.nvmlDeviceGetName(h, name, 96)
    m = M(); n.nvmlDeviceGetMemoryInfo(h, ctypes.byref(m))
    print(f"{i}, {name.value.decode()}, {m.total >> 20} MiB total, {m.used >> 20} MiB used")
n.nvmlShutdown()
PY
else
  say "no NVIDIA driver here: neither nvidia-smi nor libnvidia-ml.so.1 is installed"
  summary+=("nvml: no driver")
fi

say "== 2. TorchSharp's native shim against this machine's PyTorch"
shim=$(find "$repo/tests/TorchTrials.IntegrationTests/bin" -name libLibTorchSharp.so -print -quit 2> /dev/null)
torch_lib=${TORCH_LIB_DIR:-}
if [ -z "$torch_lib" ]; then
  torch_lib=$(timeout 60 "${PYTHON:-python3}" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2> /dev/null) || torch_lib=""
  [ -n "$torch_lib" ] && say "python torch $("${PYTHON:-python3}" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2> /dev/null) at $torch_lib"
fi
loads=no
if [ -z "$shim" ]; then
  say "no build output: tests/TorchTrials.IntegrationTests/bin has no libLibTorchSharp.so (run dotnet build TorchTrials.sln where NuGet is reachable and copy the tree)"
  summary+=("shim: no build output")
elif [ -z "$torch_lib" ] || [ ! -d "$torch_lib" ]; then
  say "no PyTorch found: python3 cannot import torch and TORCH_LIB_DIR is not set"
  summary+=("torch: not found")
else
  say "shim: $shim"
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  # Strong undefined symbols only (weak ones, such as __gmon_start__, may stay unresolved).
  nm -D --undefined-only "$shim" | awk '$1 == "U" {print $NF}' | sed 's/@.*//' | sort -u > "$tmp/needed"
  : > "$tmp/defined"
  for lib in "$torch_lib"/lib*.so* $(ldconfig -p | awk '/libstdc\+\+\.so|libc\.so\.6|libm\.so\.6|libgcc_s\.so|libpthread\.so|libdl\.so|ld-linux-x86-64\.so/ {print $NF}'); do
    [ -f "$lib" ] && nm -D --defined-only "$lib" 2> /dev/null | awk '{print $NF}' | sed 's/@.*//' >> "$tmp/defined"
  done
  sort -u "$tmp/defined" -o "$tmp/defined"
  comm -23 "$tmp/needed" "$tmp/defined" > "$tmp/missing"
  missing=$(wc -l < "$tmp/missing")
  say "the shim imports $(wc -l < "$tmp/needed") symbols; $missing of them are defined by neither $torch_lib nor the C/C++ runtime"
  if [ "$missing" -gt 0 ]; then
    c++filt < "$tmp/missing" | sed 's/^/  missing: /' | head -200
    grep -qx '_ZSt21ios_base_library_initv' "$tmp/missing" \
      && say "  (std::ios_base_library_init is libstdc++'s GLIBCXX_3.4.32, from GCC 13; the build's native fix makes the shim load without it: FACTS.md)"
    [ "$missing" -gt 200 ] && say "  ... and $((missing - 200)) more"
  fi
  summary+=("symbols: $missing missing of $(wc -l < "$tmp/needed")")
  # The test output without its CPU LibTorch, so the loader takes this machine's libraries.
  overlay="$tmp/bin"
  cp -r "$(dirname "$shim")/." "$overlay/" 2> /dev/null || cp -r "$repo/tests/TorchTrials.IntegrationTests/bin/Debug/net10.0/." "$overlay/"
  testdir=$(dirname "$(find "$repo/tests/TorchTrials.IntegrationTests/bin" -name TorchTrials.IntegrationTests.dll -print -quit)")
  rm -rf "$overlay"; cp -r "$testdir" "$overlay"
  find "$overlay" \( -name 'libtorch*.so*' -o -name 'libc10*.so*' -o -name 'libgomp*.so*' \) ! -name libLibTorchSharp.so -delete
  probe="$overlay/torchtrials.dll"
  if LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}" timeout 60 dotnet "$probe" devices > "$tmp/devices" 2>&1; then
    loads=yes
    cat "$tmp/devices"
    summary+=("load: ok")
  else
    say "TorchSharp does not load against $torch_lib:"; head -20 "$tmp/devices"
    summary+=("load: failed ($(head -1 "$tmp/devices" | cut -c1-80))")
  fi
fi

if [ "$loads" = yes ]; then
  say "== 3. CUDA path tests"
  LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}" timeout $(( $(left) > 150 ? 150 : $(left) )) \
    dotnet test "$overlay/TorchTrials.IntegrationTests.dll" --filter "FullyQualifiedName~Cuda" > "$tmp/cuda" 2>&1
  code=$?
  tail -25 "$tmp/cuda"
  if [ $code -ne 0 ]; then summary+=("cuda tests: failed or timed out (exit $code)")
  elif grep -q '^Skipped!' "$tmp/cuda"; then summary+=("cuda tests: all skipped (no CUDA device)")
  else summary+=("cuda tests: passed"); fi
  say "== 4. benchmark (c): 64 small trials fused vs one after another"
  bench=$(ls -t "$repo"/benchmarks/TorchTrials.Benchmarks/bin/*/net10.0/TorchTrials.Benchmarks.dll 2> /dev/null | head -1)
  if [ -n "$bench" ] && [ "$(left)" -gt 20 ]; then
    bdir="$tmp/bench"; cp -r "$(dirname "$bench")" "$bdir"
    find "$bdir" \( -name 'libtorch*.so*' -o -name 'libc10*.so*' -o -name 'libgomp*.so*' \) ! -name libLibTorchSharp.so -delete
    LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}" timeout "$(left)" dotnet "$bdir/TorchTrials.Benchmarks.dll" --only fusion-gpu --repeats 1 --out "${OUT:-$repo/benchmarks}/RESULTS-gpu.md" 2>&1 | tail -8 \
      && summary+=("benchmark c: see ${OUT:-benchmarks}/RESULTS-gpu.md") || summary+=("benchmark c: failed")
  else
    summary+=("benchmark c: not run (no benchmark build or no time left)")
  fi
fi
say "gpu-check ($((SECONDS - started)) s): $(IFS='; '; echo "${summary[*]}")"
