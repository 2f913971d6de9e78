# Developer recipes. Everything runs through the project's .venv; create it with `just setup`
# (or with the README's test command, which needs no `just`).

set shell := ["bash", "-euo", "pipefail", "-c"]

bin := ".venv/bin"

# list the recipes
default:
    @{{just_executable()}} --list

# create .venv and install the package with the dev tools
setup:
    python3 -m venv .venv
    {{bin}}/python -m pip install -q -U pip
    {{bin}}/python -m pip install -q -e . --group dev

# run the test suite (soak and bench tests are deselected by default)
test *args:
    {{bin}}/python -m pytest {{args}}

# run the test suite with a coverage report
cov *args:
    {{bin}}/python -m pytest --cov --cov-report=term-missing {{args}}

# run the crash rounds at scale and the multi-process mix (prints "N rounds, 0 corrupt, 0 lost")
soak *args:
    {{bin}}/python soak.py {{args}}

# compare DictDataBase with SQLite and TinyDB; writes assets/benchmark.{png,md,json}
bench *args:
    {{bin}}/python -m benchmarks {{args}}

# profile key reads and key sessions with pyinstrument (text report)
profile *args:
    {{bin}}/python profiler.py {{args}}

# time full vs key reads and sessions
scenarios *args:
    {{bin}}/python scenario_comparison.py {{args}}

# several processes writing random keys of one file
random-writes *args:
    {{bin}}/python scene_random_writes.py {{args}}

# run the user management / purchases demo
demo:
    {{bin}}/python examples/demo.py

# lint and check formatting without changing files
lint:
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .

# format the code and apply safe lint fixes
fmt:
    {{bin}}/ruff format .
    {{bin}}/ruff check --fix .

# refresh uv.lock after changing pyproject.toml
lock:
    {{bin}}/uv lock
