"""Every measured number the README quotes comes from a results file a script wrote.

The README marks each quoted measurement::

    <!-- quote: benchmarks/results.md#SECTION -->
    ... text with numbers ...
    <!-- /quote -->

and ``SECTION`` is a block of ``benchmarks/results.md`` that a script under ``benchmarks/``
writes (``write_section("SECTION", ...)``). This test fails when a quoted number is not in its
section (a typo, a rounded or stale figure, a number from another run), when a section is not
written by any script, or when one of the measured tables lost its quote.
"""

import glob
import os
import re

import pytest

from benchmarks._results import read_section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUOTE = re.compile(r"<!-- quote: (\S+?)#(\S+?) -->\n(.*?)<!-- /quote -->", re.S)
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
MEASURED = {"quickstart", "benchmark", "pipeline", "plan_check"}


def numbers(text):
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def quotes():
    with open(os.path.join(ROOT, "README.md")) as f:
        return QUOTE.findall(f.read())


def test_the_readme_quotes_every_measured_table_from_its_results_section():
    assert MEASURED <= {section for _, section, _ in quotes()}


@pytest.mark.parametrize("path,section,text", quotes(),
                         ids=lambda value: value if "\n" not in str(value) else "")
def test_every_quoted_number_is_in_its_results_section(path, section, text):
    source = read_section(section, os.path.join(ROOT, path))
    missing = sorted(numbers(text) - numbers(source), key=float)
    assert not missing, f"README quotes {missing} under {path}#{section}, which has no such number"


def test_each_quoted_section_is_written_by_a_script():
    scripts = "".join(open(p).read() for p in glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))
    for _, section, _ in quotes():
        assert f'write_section("{section}"' in scripts, section


def test_a_changed_number_is_caught():
    (path, section, text), *_ = quotes()
    source = read_section(section, os.path.join(ROOT, path))
    first = NUMBER.search(text).group(0)                  # the quote's first number ...
    assert numbers(text.replace(first, "123.45", 1)) - numbers(source) == {"123.45"}  # changed
