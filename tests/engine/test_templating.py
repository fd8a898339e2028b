"""Templates render in one immutable sandbox: strict names, plain data, capped time and size."""

from __future__ import annotations

import enum
import threading
import time
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from markupsafe import Markup

from engine import templating
from engine.templating import (
    TemplateError,
    TemplateSyntaxProblem,
    TemplateTooLarge,
    TemplateTooSlow,
    UndefinedName,
    UnsafeTemplate,
    check,
    plain,
    render,
    undefined_names,
)

# The context a step of workflow-format.md's example sees, trimmed.
CONTEXT: dict[str, Any] = {
    "account": {
        "name": "Globex",
        "plan": "trial",
        "primary_contact": {"email": "hank@globex.example", "first_name": "Hank"},
        "contacts": [{"email": "hank@globex.example"}, {"email": "marge@globex.example"}],
        "renewal": date(2026, 3, 1),
        "arr": Decimal("1200.50"),
    },
    "owner": {"name": "Bob", "email": "bob@acme.example"},
    "workflow": {"name": "Trial welcome series"},
}


# -- syntax ---------------------------------------------------------------------------------
def test_a_syntax_error_names_its_line() -> None:
    with pytest.raises(TemplateSyntaxProblem) as caught:
        check("Hi {{ account.name }},\n{% for c in account.contacts %}\n{{ c.email }\n")
    assert caught.value.line == 3
    assert str(caught.value) == "line 3: unexpected '}'"


def test_render_reports_the_same_syntax_error() -> None:
    with pytest.raises(TemplateSyntaxProblem, match=r"^line 1: "):
        render("{% if %}", CONTEXT)


def test_an_unknown_filter_is_refused_even_in_a_branch_not_taken() -> None:
    with pytest.raises(TemplateSyntaxProblem) as caught:
        check("{% if false %}\n{{ account.name | shout }}{% endif %}")
    assert str(caught.value) == "line 2: no filter named 'shout'"


@pytest.mark.parametrize(
    ("source", "tag"),
    [
        ("{% include 'footer' %}", "include"),
        ("{% import 'macros' as m %}", "import"),
        ("{% from 'macros' import m %}", "from"),
        ("{% extends 'base' %}", "extends"),
    ],
)
def test_loading_other_templates_is_refused(source: str, tag: str) -> None:
    with pytest.raises(TemplateSyntaxProblem) as caught:
        check(source)
    assert str(caught.value) == f"line 1: {{% {tag} %}} is not available"


def test_check_accepts_a_valid_template() -> None:
    assert check("Welcome to Acme, {{ account.name | default('friend') }}") is None


# -- rendering ------------------------------------------------------------------------------
def test_render_reads_a_nested_context() -> None:
    source = (
        "Hi {{ account.primary_contact.first_name | default('there') }}, {{ account.name }}"
        " ({{ account.plan | upper }}, renews {{ account.renewal.strftime('%d %b %Y') }},"
        " {{ '%.2f' | format(account.arr) }}): "
        "{% for c in account.contacts %}{{ c.email }}{% if not loop.last %}, {% endif %}"
        "{% endfor %}. Owner: {{ owner.name }}"
    )
    assert render(source, CONTEXT) == (
        "Hi Hank, Globex (TRIAL, renews 01 Mar 2026, 1200.50): "
        "hank@globex.example, marge@globex.example. Owner: Bob"
    )


def test_default_fills_a_missing_name() -> None:
    context = {"account": {"primary_contact": {"email": "x@y.example"}}}
    source = "Hi {{ account.primary_contact.first_name | default('there') }},"
    assert render(source, context) == "Hi there,"
    assert render("{{ nobody.name | default('team') }}", {}) == "team"


def test_is_defined_guards_a_missing_name() -> None:
    source = "{% if account.trial_ends is defined %}ends {{ account.trial_ends }}{% endif %}ok"
    assert render(source, CONTEXT) == "ok"


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("Hi {{ account.nmae }}", "account.nmae"),
        ("{{ account.primary_contact.email }}", "account.primary_contact.email"),
        ("{{ account.manager.email }}", "account.manager.email"),
        ("{{ account.contacts[5].email }}", "account.contacts[5].email"),
        ("{% for c in account.contacts %}{{ c.emial }}{% endfor %}", "c.emial"),
        ("{{ acount.name | upper }}", "acount.name"),
        ("{% if account.trial %}trial{% endif %}", "account.trial"),
        ("{{ account.seats + 1 }}", "account.seats"),
        ("{{ greeting() }}", "greeting"),
    ],
)
def test_using_an_undefined_name_fails_naming_its_dotted_path(source: str, name: str) -> None:
    context = {"account": {"name": "Globex", "primary_contact": None, "contacts": [{}]}}
    with pytest.raises(UndefinedName) as caught:
        render(source, context)
    assert caught.value.names == [name]
    assert str(caught.value) == f"undefined name '{name}'"


def test_undefined_names_reports_every_name_once_in_order() -> None:
    source = (
        "{{ account.nmae }} {{ account.primary_contact.emial }}"
        " {{ account.primary_contact.first_name | default('there') }}"
        " {% if account.vip is defined %}{{ account.vip }}{% endif %}"
        " {% for c in account.contacts %}{{ c.phone }}{% endfor %}"
        " {{ owner.title | upper }} {{ acount.name }} {{ account.nmae }} {{ account.name }}"
    )
    assert undefined_names(source, CONTEXT) == [
        "account.nmae",
        "account.primary_contact.emial",
        "c.phone",
        "owner.title",
        "acount.name",
    ]


def test_undefined_names_is_empty_for_a_sound_template() -> None:
    source = "Welcome to Acme, {{ account.name }}! {{ account.phone | default('') }}"
    assert undefined_names(source, CONTEXT) == []


# -- the sandbox ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ self._TemplateReference__context }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ range.__self__ }}",
        "{{ dict.mro() }}",
        "{{ account['__class__'] }}",
        '{{ "{0.__class__}".format(1) }}',
        "{{ ''.__class__ | default('hidden') }}",
        "{{ [].append(1) }}",
        "{{ {}.update(a=1) }}",
        "{{ account.contacts.pop() }}",
        "{{ account.clear() }}",
    ],
)
def test_escape_payloads_and_mutation_are_refused(source: str) -> None:
    with pytest.raises(UnsafeTemplate, match=r"^unsafe template: "):
        render(source, CONTEXT)


def test_context_data_is_unchanged_after_a_refused_mutation() -> None:
    context = {"tags": ["a"]}
    with pytest.raises(UnsafeTemplate):
        render("{{ tags.append('b') }}", context)
    assert context == {"tags": ["a"]}


def test_only_range_and_dict_remain_as_globals() -> None:
    assert render("{{ range(3) | join(',') }} {{ dict(a=1).a }}", {}) == "0,1,2 1"
    for name in ("lipsum", "cycler", "joiner", "namespace"):
        with pytest.raises(UndefinedName):
            render(f"{{{{ {name}() }}}}", {})


def test_a_key_starting_with_underscore_is_read_by_subscript() -> None:
    assert render("{{ record['_id'] }}", {"record": {"_id": 7}}) == "7"
    with pytest.raises(UnsafeTemplate):
        render("{{ record._id }}", {"record": {"_id": 7}})


def test_runtime_errors_become_template_errors() -> None:
    for source in ("{{ 1 / 0 }}", "{{ account.arr / 0 }}"):
        with pytest.raises(TemplateError) as caught:
            render(source, CONTEXT)
        assert str(caught.value) == "template failed: division by zero"


def test_the_environment_runs_templates_only_inside_render() -> None:
    env = templating.sandbox()
    assert env is templating.sandbox()
    assert templating.sandbox(html=True).autoescape is True
    with pytest.raises(RuntimeError, match="only inside render"):
        env.from_string("{{ 'a' | upper }}").render()


# -- limits ---------------------------------------------------------------------------------
BOMBS = {
    "nested loops that write": (
        "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
        (TemplateTooLarge, TemplateTooSlow),
    ),
    "nested loops that write nothing": (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        TemplateTooSlow,
    ),
    "nested loops over one list": (
        "{% set r = range(100000) | list %}"
        "{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
        TemplateTooSlow,
    ),
    "macro recursion": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(60) }}",
        TemplateTooSlow,
    ),
    "string times a huge number": ("{{ 'x' * 10 ** 9 }}", TemplateTooLarge),
    "list times a huge number": ("{{ (['x'] * 10 ** 9) | length }}", TemplateTooLarge),
    "a huge power": ("{{ 2 ** (10 ** 9) }}", TemplateTooLarge),
    "huge ints divided": ("{{ (10 ** 99999) // (10 ** 49999) }}", TemplateTooLarge),
    "doubling with ~": (
        "{% set s = 'x' * 100000 %}" + "{% set s = s ~ s %}" * 40 + "{{ s | length }}",
        TemplateTooLarge,
    ),
    "nested literals sharing one string": (  # 10 GB as text, a few hundred bytes in memory
        "{% set v = 'x' * 100000 %}"
        + "".join(f"{{% set v = [{', '.join('v' * 10)}] %}}" for _ in range(5))
        + "{{ (v ~ '') | length }}",
        TemplateTooLarge,
    ),
    "a captured block": (
        "{% set s %}{% for a in range(100000) %}{% for b in range(100000) %}"
        + "x" * 1000
        + "{% endfor %}{% endfor %}{% endset %}{{ s | length }}",
        TemplateTooLarge,
    ),
    "a printf width": ("{{ '%0999999999d' % 1 }}", TemplateTooLarge),
    "a format filter width": ("{{ '%*d' | format(999999999, 1) }}", TemplateTooLarge),
    "a str.format width": ("{{ '{:>{w}}'.format(1, w=999999999) }}", TemplateTooLarge),
    "center": ("{{ 'x' | center(999999999) }}", TemplateTooLarge),
    "ljust": ("{{ 'x'.ljust(999999999) }}", TemplateTooLarge),
    "replace the empty string": (
        "{{ ('x' * 100000) | replace('', 'y' * 100) }}",
        TemplateTooLarge,
    ),
    "join with a long separator": (
        "{{ ('y' * 100000).join(range(100000) | map('string')) }}",
        TemplateTooLarge,
    ),
    "indent many lines": ("{{ ('\\n' * 100000) | indent(100000) }}", TemplateTooLarge),
    "map to wide strings": (
        "{{ range(100000) | map('string') | map('center', 100000) | list | length }}",
        TemplateTooLarge,
    ),
    "a padded batch": (
        "{{ ['x' * 100000] | batch(100000, 'x' * 100000) | list | length }}",
        TemplateTooLarge,
    ),
}


@pytest.mark.parametrize(("source", "error"), BOMBS.values(), ids=BOMBS.keys())
def test_bombs_are_stopped_within_seconds(
    source: str, error: type[Exception] | tuple[type[Exception], ...]
) -> None:
    # A bomb only the clock stops runs to its limit: a shorter one keeps the suite quick.
    max_seconds = 0.5 if error is TemplateTooSlow else templating.DEFAULT_SECONDS
    started = time.monotonic()
    with pytest.raises(error):
        render(source, {}, max_seconds=max_seconds)
    assert time.monotonic() - started < 5  # a safety bound, not a performance target


def test_the_output_cap_names_the_limit() -> None:
    source = "{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}"
    with pytest.raises(TemplateTooLarge) as caught:
        render(source, {})
    assert str(caught.value) == "output is longer than 100,000 characters"
    with pytest.raises(TemplateTooLarge, match=r"^output is longer than 10 characters$"):
        render("{{ account.name }} {{ owner.name }}!", CONTEXT, max_chars=10)
    assert render("{{ account.name }}", CONTEXT, max_chars=6) == "Globex"


def test_the_time_cap_names_the_limit() -> None:
    source = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(TemplateTooSlow) as caught:
        render(source, {}, max_seconds=0.2)
    assert str(caught.value) == "template took longer than 0.2 seconds"
    assert time.monotonic() - started < 2


def test_a_slow_render_does_not_stop_another_thread() -> None:
    errors: list[TemplateError] = []

    def slow() -> None:
        try:
            render(BOMBS["nested loops that write nothing"][0], {}, max_seconds=0.5)
        except TemplateError as exc:
            errors.append(exc)

    worker = threading.Thread(target=slow)
    worker.start()
    time.sleep(0.1)
    assert render("Hi {{ owner.name }}", CONTEXT) == "Hi Bob"
    worker.join()
    assert [type(error) for error in errors] == [TemplateTooSlow]


# -- the context ----------------------------------------------------------------------------
class _Record:
    name = "an ORM row"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"greet": lambda: "hi"}, "context.greet has type function"),
        ({"account": _Record()}, "context.account has type _Record"),
        ({"account": {"tags": {"a", "b"}}}, "context.account.tags has type set"),
        ({"account": {"contacts": [{"f": print}]}}, r"context.account.contacts\[0\].f has type"),
        ({"account": {1: "one"}}, "context.account has a key that is not a str: 1"),
    ],
)
def test_a_context_that_is_not_plain_data_is_refused(context: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=f"^{message}"):
        render("{{ account }}", context)


def test_plain_copies_data_and_turns_tuples_and_str_subclasses_plain() -> None:
    class Stage(enum.StrEnum):
        TRIAL = "trial"

    data = {"stage": Stage.TRIAL, "pair": (1, 2), "when": date(2026, 1, 31), "note": None}
    copied = plain(data)
    assert copied == {"stage": "trial", "pair": [1, 2], "when": date(2026, 1, 31), "note": None}
    assert type(copied["stage"]) is str
    assert copied is not data


def test_html_mode_escapes_record_data() -> None:
    assert render("<p>{{ name }}</p>", {"name": "<script>"}, html=True) == "<p>&lt;script&gt;</p>"
    # Markup in the context is turned into plain text first, so it is escaped too.
    assert render("<p>{{ name }}</p>", {"name": Markup("<b>x</b>")}, html=True) == (
        "<p>&lt;b&gt;x&lt;/b&gt;</p>"
    )
    assert render("{{ name }}", {"name": "<script>"}) == "<script>"
