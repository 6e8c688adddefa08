#!/usr/bin/env bash
# Print the path of a Python 3.10 on this machine (system, else pyenv's newest 3.10), or nothing.
# scripts/test.sh runs the dbt-free tests under it at the lowest dependency bounds; scripts/lock.sh
# locks what that run installs.
if python3.10 -c '' 2>/dev/null; then command -v python3.10; exit 0; fi
if command -v pyenv >/dev/null 2>&1; then
  version="$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$)' | tail -n 1)"
  if [[ -n "$version" ]]; then echo "$(pyenv root)/versions/$version/bin/python3.10"; fi
fi
exit 0
