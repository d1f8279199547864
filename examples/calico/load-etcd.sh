#!/bin/sh
# Load a flat-key data file (YAML or JSON, as read by confpy's file store) into etcd.
#
#   examples/calico/load-etcd.sh [DATA_FILE]      default: example-cluster.yaml
#
# Uses etcdctl (v3 API); point it at etcd with etcdctl's own settings, e.g.
#   ETCDCTL_ENDPOINTS=http://127.0.0.1:2379 examples/calico/load-etcd.sh
# Every key is written with "etcdctl put -- KEY VALUE": values are passed as one
# argument each, never through a shell, so quotes and newlines arrive unchanged.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
file=${1:-$here/example-cluster.yaml}
python=${PYTHON:-$root/.venv/bin/python}
[ -x "$python" ] || python=python3
export ETCDCTL_API=3
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$python" - "$file" <<'PY'
import asyncio
import subprocess
import sys

from confpy.stores.file import FileStore

keys = asyncio.run(FileStore([sys.argv[1]]).snapshot(["/"])).values
for key, value in sorted(keys.items()):
    subprocess.run(["etcdctl", "put", "--", key, value], check=True, stdout=subprocess.DEVNULL)
print(f"loaded {len(keys)} keys from {sys.argv[1]}")
PY
