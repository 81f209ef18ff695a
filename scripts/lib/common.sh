# shellcheck shell=bash
# What the scripts in scripts/ share; each sources it right after `set -euo pipefail`:
#   . "$(dirname "$0")/lib/common.sh" && usage_on_help "$@"
# Bash 3.2 (macOS) compatible, like every script that scripts/test --quick runs.

# usage_on_help "$@": on -h or --help as the first argument, print the calling script's usage
# (its header comment, without the "# ") and exit, before the script does anything else.
usage_on_help() {
  case ${1:-} in
    -h | --help)
      awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
      exit 0
      ;;
  esac
}

# as_root COMMAND...: run COMMAND as root: directly when root, else through passwordless sudo
# (sudo -n: these scripts run unattended, so a password prompt would only hang or fail).
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    echo "$(basename "$0"): need root or passwordless sudo to run: $*" >&2
    return 1
  fi
}

# The oldest Docker Compose that reads this project's compose files as written: `include` with
# env_file, `pull --policy`, and the !reset and !override tags on included services (2.23 ignores
# those tags silently; 2.24.0-2.24.5 refuse compose.demo-readonly.yaml's overrides).
COMPOSE_MIN=2.24.6

# compose_version -> the Compose v2 plugin's version (2.40.3), or nothing when there is none
compose_version() {
  local version
  version=$(docker compose version --short 2>/dev/null) || return 0
  version=${version#v}
  echo "${version%%[!0-9.]*}" # 2.40.3-desktop.1 -> 2.40.3
}

# compose_recent VERSION: true when VERSION (MAJOR.MINOR.PATCH) is COMPOSE_MIN or later
compose_recent() {
  local have want i
  IFS=. read -r -a have <<<"$1"
  IFS=. read -r -a want <<<"$COMPOSE_MIN"
  for i in 0 1 2; do
    ((${have[i]:-0} == want[i])) || return $((${have[i]:-0} < want[i]))
  done
}
