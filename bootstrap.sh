#!/usr/bin/env bash
# One entry point for people and CI. Idempotent: re-running reuses the virtualenv while the pinned
# requirements are unchanged.
#
#   ./bootstrap.sh demo    set up, ingest the sample drive in data/, answer a question (offline)
#   ./bootstrap.sh test    set up, lint (ruff), type-check (mypy) and run the whole test suite
#   ./bootstrap.sh setup   only set up the virtualenv
#
# The virtualenv (about 7 GB: PyTorch is a CUDA build) lives in a cache folder keyed by the hash of
# the pinned requirements and of this script, shared by every checkout on the machine, and .venv in
# the checkout links to it. A change to the pins or to the install steps builds a new one.
# Set MMRAG_VENV to put it elsewhere.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)
python=${PYTHON:-python3}
stamp=$(cat requirements/lock.txt requirements/nodeps.txt "$0" | sha256sum | cut -c1-16)
venv=${MMRAG_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mmrag/venv-$stamp}

say() { printf '\033[1m[mmrag]\033[0m %s\n' "$*" >&2; }

setup() {
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "Python 3.11 or newer is needed (found: $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11"
    exit 1
  fi
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.mmrag-stamp" 2>/dev/null)" != "$stamp" ]; then
    say "setting up $venv (pinned packages from requirements/lock.txt; the first time takes several minutes)"
    mkdir -p "$(dirname "$venv")"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements/lock.txt
    # rapidocr-onnxruntime asks for opencv-python, which collides with opencv-python-headless (both
    # write cv2/); everything else it needs is pinned in lock.txt.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements/nodeps.txt
    echo "$stamp" > "$venv/.mmrag-stamp"
  fi
  if [ "$venv" != "$here/.venv" ] && [ ! -e "$here/.venv" ] || [ -L "$here/.venv" ]; then
    ln -sfn "$venv" "$here/.venv"
  fi
  if ! "$venv/bin/python" -c "import mmrag.pipeline, sys, pathlib; p = pathlib.Path(mmrag.pipeline.__file__).resolve().parents[1]; sys.exit(p != pathlib.Path('$here').resolve())" 2>/dev/null; then
    say "installing mmrag from $here (editable)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$here"
  fi
}

demo() {
  local index=${MMRAG_INDEX:-$here/.mmrag-demo-index}
  local question=${1:-"When did IBM introduce the electric typewriter?"}
  say "ingesting the sample drive in data/ into $index"
  "$venv/bin/mmrag" ingest "$here/data/sample-drive" --index "$index"
  say "asking: $question"
  "$venv/bin/mmrag" ask "$question" --index "$index"
}

apt_install() {
  # apt_install WHY OTHERWISE PACKAGE...: install Debian packages where apt-get and root (or sudo) are
  # available; otherwise say what is missing and what that means. Never fails the run.
  local why=$1 otherwise=$2
  shift 2
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=$(command -v sudo || true)
  if command -v apt-get >/dev/null && { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; }; then
    say "installing $* $why (apt-get)"
    $sudo apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
      || say "could not install $*; $otherwise"
  else
    say "$* not installed and apt-get is not usable here; $otherwise"
  fi
}

wordnet_missing() { [ ! -f /usr/share/wordnet/data.noun ]; }

demo_packages() {
  # WordNet (Debian wordnet-base) puts photo labels in plain words ("tabby cat": cat, feline, animal);
  # without it photos are still described by their labels.
  if wordnet_missing; then
    apt_install "for plain-word photo descriptions" "photos are described by their ImageNet labels only" wordnet-base
  fi
}

test_packages() {
  # Debian packages some tests drive: Chromium for the web page (through Playwright, whose pip package
  # carries the driver, not a browser), LibreOffice Impress for rendered slide pictures, WordNet for
  # plain-word photo descriptions, Samba (smbd) for the SMB source's tests, espeak-ng for the spoken
  # canary of the permission leak test, nginx as the token proxy in front of a Chroma server and Redis
  # (redis-server) as the broker of the distributed ingest's tests, and setfacl (acl) for the SMB share's
  # permission tests. Installed when missing, where apt-get
  # and root (or sudo) are available; otherwise those tests say what is missing.
  local want=()
  [ -x /usr/bin/chromium ] || want+=(chromium fonts-dejavu-core)
  command -v soffice >/dev/null || want+=(libreoffice-impress-nogui)
  wordnet_missing && want+=(wordnet-base)
  command -v smbd >/dev/null || [ -x /usr/sbin/smbd ] || want+=(samba)
  command -v espeak-ng >/dev/null || want+=(espeak-ng)
  [ -x /usr/sbin/nginx ] || want+=(nginx)
  command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || want+=(redis-server)
  command -v setfacl >/dev/null || want+=(acl)
  [ ${#want[@]} -eq 0 ] && return 0
  apt_install "for the browser, slide-rendering, photo-description, SMB-share, SMB-permission, speech, proxy and broker tests" "the tests that need them will say so" \
    "${want[@]}"
}

run_tests() {
  test_packages
  say "ruff"
  "$venv/bin/ruff" check .
  say "mypy"
  mkdir -p .typecheck && ln -sfn .. .typecheck/mmrag
  "$venv/bin/mypy" -p mmrag.pipeline -p mmrag.ingest -p mmrag.retrieval -p mmrag.prompts
  say "pytest (fast and slow tests)"
  "$venv/bin/python" -m pytest "$@"
}

cmd=${1:-demo}
shift || true
case "$cmd" in
  setup) setup ;;
  demo) setup; demo_packages; demo "$@" ;;
  test) setup; run_tests "$@" ;;
  *) say "usage: ./bootstrap.sh demo [QUESTION] | test [PYTEST ARGS] | setup"; exit 2 ;;
esac
