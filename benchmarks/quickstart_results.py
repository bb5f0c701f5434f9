"""Record a ``vit-tf quickstart`` run in benchmarks/results.md (section ``quickstart``).

    vit-tf quickstart --out OUT    # (uptime before and after if the time is to be quoted)
    python benchmarks/quickstart_results.py OUT --load-before "$(cat before)" --load-after "..."

Copies the run's table (``OUT/run/eval/report.txt``, exactly as the quickstart printed it) and
its time (``OUT/quickstart_timing.json``), adds the gap to the majority baseline from
``OUT/run/eval/metrics.json``, the experiment, the model's SHA-256 and the commit. The README
quotes this section; ``tests/test_readme_numbers.py`` checks that every number it quotes there
is in it.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._results import RESULTS, write_section  # noqa: E402


def section_text(out, load_before="", load_after="", commit=""):
    run = os.path.join(out, "run")
    with open(os.path.join(run, "eval", "report.txt")) as f:
        table = f.read().rstrip()
    with open(os.path.join(out, "quickstart_timing.json")) as f:
        t = json.load(f)
    with open(os.path.join(run, "eval", "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(run, "config.json")) as f:
        experiment = json.load(f)["name"]
    overall = metrics["overall"]
    exact, major = 100 * overall["exact_match"], 100 * overall["majority_baseline"]
    when = datetime.datetime.fromtimestamp(os.path.getmtime(
        os.path.join(out, "quickstart_timing.json")), datetime.timezone.utc)
    lines = [
        "## Quickstart (`vit-tf quickstart`, recorded by `benchmarks/quickstart_results.py`)",
        "", "```", table,
        f"time: data {t['data_s']:.0f} s + training {t['train_s']:.0f} s + evaluation "
        f"{t['eval_s']:.0f} s = {t['total_s'] / 60:.1f} min", "```", "",
        f"overall (short answers): {exact:.1f} exact vs {major:.1f} for the majority answer, "
        f"{exact - major:+.1f} points",
        f"experiment `{experiment}`, model SHA-256 {metrics['model']['sha256'][:16]}..., "
        f"commit {commit or 'unknown'}, finished {when:%Y-%m-%d %H:%M} UTC"]
    if load_before or load_after:
        lines += [f"load before: `{load_before}`", f"load after: `{load_after}`"]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="the quickstart's --out folder")
    p.add_argument("--load-before", default="")
    p.add_argument("--load-after", default="")
    p.add_argument("--commit", default=None, help="default: git HEAD of the out folder's repo")
    p.add_argument("--results", default=RESULTS)
    args = p.parse_args(argv)
    commit = args.commit
    if commit is None:
        git = subprocess.run(["git", "-C", os.path.abspath(args.out), "rev-parse", "--short",
                              "HEAD"], capture_output=True, text=True)
        commit = git.stdout.strip()
    text = section_text(args.out, args.load_before, args.load_after, commit)
    print(text)
    write_section("quickstart", text, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
