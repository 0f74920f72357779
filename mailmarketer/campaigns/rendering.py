"""Rendering campaigns: compiled once per campaign (per worker), rendered once per recipient.

    compiled = compile_campaign(campaign)            # TemplateProblem when it cannot be used
    context = recipient_context(workspace=..., campaign=..., subscriber=..., urls=...)
    message = compiled.render(context)               # RenderedMessage; RenderError on a cap

What a template sees (plain data only, never models, settings or our functions):
`subscriber.email`, `.name`, `.first_name`, `.last_name`, `.uuid`,
`subscriber.attributes.<name>`,
`campaign.name`, `campaign.subject` (as written), `workspace.name`, `workspace.sender_name`,
`postal_address` (also `workspace.postal_address`; by line: `workspace.postal_lines`),
`lists` (the names of the campaign's lists),
`unsubscribe_url`, `manage_url`, `view_in_browser_url`, and in the HTML and text bodies
`subject` (this recipient's rendered subject).

A value someone lacks renders as nothing, and arithmetic or comparisons with it do not fail, so
one subscriber without an attribute never stops a send. For a fallback, use `default`:

    Hello {{ subscriber.first_name | default("there") }},
    {% if subscriber.attributes.plan == "pro" %}Thanks for being a Pro customer.{% endif %}

Lists render as their items separated by commas; dictionaries and anything else that is not
text or a number render as nothing.

The sandbox (Jinja2's ImmutableSandboxedEnvironment, narrowed further):
- no underscore attributes, and on text, lists and dicts only a short list of harmless methods
  (`lower`, `split`, `get`, `items`...); the only global is `range` (at most 10,000 numbers);
  `cycler`, `joiner`, `namespace`, `lipsum` and `dict` are gone; filters are an allowlist
  (no `safe`, `format`, `center`, `tojson`, `pprint`, `attr`...); a template cannot include,
  import or extend another;
- an unknown filter or test, or a syntax error, is found when the campaign is compiled (Jinja2
  itself would let an unknown filter inside an `{% if %}` through until it runs), and the
  compile renders each part once with sample data so that errors that do not depend on the
  recipient are reported with their line at save time.

Caps, per recipient (all three parts together), enforced while rendering rather than measured
afterwards, so that a runaway template stops early instead of eating the worker:
- time (RENDER_TIME_LIMIT, 200 ms of the rendering thread's CPU time; the wall clock is read
  first, the thread's CPU time only once that runs out, and at the start from a reading at
  most CPU_MARK_S old, see _Rendering): the clock is read at every call in
  the template (macros, `range`, methods), every 1,024 loop iterations and once per part;
- loops (MAX_ITERATIONS, 100,000 iterations in all): every `{% for %}` iterates through a guard
  the compiler puts in (an AST rewrite; the author cannot name or shadow it);
- size: each part's output (MAX_OUTPUT, 1,000,000 characters; the subject MAX_SUBJECT); `*`,
  `+`, `~`, `%`, `**`, `replace` and `join` refuse results past the cap before making them; and
  a budget (MAX_WORK, 4,000,000 characters) charged for every printed value and, per loop
  iteration, for the loop body's static text, bounds what macros and `{% set %}` blocks can build
  in memory where the output counter cannot see it.
- numbers: every arithmetic operator goes through CampaignSandbox.call_binop, which refuses an
  integer past MAX_INT_BITS before computing it (squaring a number of a million digits takes
  seconds, each further squaring three times as long), reads the clock, and refuses `%`
  formatting whose widths or total size pass the caps; str.format is not offered at all.
A cap hit raises RenderError: the engine records that recipient as failed and goes on.

The caps act between operations. The web server (saving, previews, public pages) also runs
compiling and rendering in a child process killed past ISOLATED_SECONDS (check_content,
check_campaign, render_isolated; see "isolated" at the end).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from time import perf_counter, thread_time
from typing import NamedTuple
from urllib.parse import quote

import markupsafe
from django.conf import settings
from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.filters import (
    do_dictsort,
    do_filesizeformat,
    do_first,
    do_float,
    do_groupby,
    do_int,
    do_items,
    do_last,
    do_list,
    do_map,
    do_max,
    do_min,
    do_reject,
    do_rejectattr,
    do_reverse,
    do_round,
    do_select,
    do_selectattr,
    do_sort,
    do_sum,
    do_truncate,
    do_unique,
    make_attrgetter,
)
from jinja2.runtime import ChainableUndefined, LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.tests import TESTS as JINJA_TESTS
from jinja2.utils import pass_environment, pass_eval_context
from markupsafe import Markup, escape

from mailmarketer.lib.bounded import Overrun, run_bounded

from . import content, layouts
from .content import TemplateProblem
from .layouts import default_layout_html

logger = logging.getLogger(__name__)

__all__ = [
    "CompiledCampaign",
    "ContentSpec",
    "RenderError",
    "RenderedMessage",
    "TemplateProblem",
    "campaign_context",
    "check_campaign",
    "check_content",
    "compile_campaign",
    "compile_content",
    "recipient_context",
    "render_isolated",
    "sample_context",
    "workspace_context",
]

RENDER_TIME_LIMIT = 0.2  # seconds per recipient
MAX_OUTPUT = 1_000_000  # characters per part
MAX_SUBJECT = 2_000
MAX_ITERATIONS = 100_000
MAX_RANGE = 10_000
MAX_SEQUENCE = 10_000  # items in a list made by * or +
MAX_WORK = 4_000_000
# The web server checks and previews templates in a child process killed past these (see
# "Isolated" below): several parts are rendered there under RENDER_TIME_LIMIT each, and a
# 1 MB body is sanitised and its CSS inlined, so a generous multiple of the cap.
ISOLATED_SECONDS = 2.0
ISOLATED_MEMORY = 512 * 2**20  # bytes beyond what the child starts with
MAX_INT_BITS = 4_096  # any integer a template computes; 10**999 is 3,319 bits


class RenderError(Exception):
    """A recipient's message could not be rendered (a runtime error or a cap)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    html: str | None
    text: str


class SplitValues(NamedTuple):
    """One recipient's subject and the values of the split HTML and text parts
    (CompiledCampaign.render_values)."""

    subject: str
    html: list[str]
    text: list[str]


# -- the budget of the render in progress --------------------------------------------------------

_NEVER = float("inf")


class _Budget(threading.local):
    deadline = _NEVER
    cpu_start = 0.0
    iterations = 0
    work = 0
    # The thread's CPU clock as last read, and when (perf_counter): see _Rendering.
    mark_wall = -_NEVER
    mark_cpu = 0.0


# How old a reading of the thread's CPU clock a render may start from (see _Rendering).
CPU_MARK_S = 0.01


_budget = _Budget()


class _Exceeded(SecurityError):
    """A cap was hit."""


def _check_clock() -> None:
    if perf_counter() > _budget.deadline:
        # The wall clock ran out; what counts is the time this thread spent rendering (a busy
        # machine that leaves the worker waiting for a core is not the template's doing, and
        # failed recipients for good under load). Read only then: the common path stays cheap.
        spent = thread_time() - _budget.cpu_start
        if spent < RENDER_TIME_LIMIT:
            _budget.deadline = perf_counter() + RENDER_TIME_LIMIT - spent
            return
        raise _Exceeded(f"rendering took longer than {int(RENDER_TIME_LIMIT * 1000)} ms")


def _charge(size: int) -> None:
    _budget.work += size
    if _budget.work > MAX_WORK:
        raise _Exceeded(f"the template produces more than {MAX_WORK:,} characters")


# -- plain values ------------------------------------------------------------------------------


def _scalar_text(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, bool | int | float | Decimal):
        return str(value)
    return ""


def _text(value) -> str:
    """What a value prints as: text and numbers as themselves, lists as their items separated
    by commas, anything else (objects, dicts, functions) as nothing, so no repr ever reaches a
    message."""
    if type(value) is str:
        return value
    if isinstance(value, list | tuple):
        parts = [_scalar_text(item) for item in value]
        if sum(map(len, parts)) + 2 * len(parts) > MAX_OUTPUT:
            raise _Exceeded(f"a list longer than {MAX_OUTPUT:,} characters cannot be printed")
        return ", ".join(parts)
    return _scalar_text(value)


def _finalize(value):
    # Called for every printed value: the common cases (text, and markup from _url, _attr or
    # escape, which _text gives back as it is) without a function call.
    kind = type(value)
    if kind is not str and kind is not Markup:
        value = _text(value)
    budget = _budget
    budget.work += len(value)
    if budget.work > MAX_WORK:
        raise _Exceeded(f"the template produces more than {MAX_WORK:,} characters")
    return value


# -- filters and tests ---------------------------------------------------------------------------


# markupsafe's escape() is Python around its C `_escape_inner`: for a str it makes the Markup
# through Markup.__new__ (Python again), and for a value already Markup (what _url and _attr
# give, printed through escape() once more) it goes through __html__ and Markup.__new__ to
# copy it. A personalised HTML part printed ~12 values a recipient that way, ~1 us each.
# `_escape` is the same function for those two types without the Python layers, and the
# compiled templates use it in place of escape() (_from_code); anything else, and a markupsafe
# without `_escape_inner` (a private name), goes to escape() as before.
_escape_inner = getattr(markupsafe, "_escape_inner", None)
_new_str = str.__new__


def _escape(value) -> Markup:
    """markupsafe.escape(value), faster for str and Markup (see above)."""
    kind = type(value)
    if kind is Markup:
        return value
    if kind is str and _escape_inner is not None:
        return _new_str(Markup, _escape_inner(value))
    return escape(value)


def _attr(value) -> Markup:
    """A value inside an HTML attribute, <style> or <title>: always escaped, even markup (a
    macro's output), so it cannot close the attribute."""
    if type(value) is str:
        return _escape(value)
    return _escape(str.__str__(_text(value)))


_SCHEME = re.compile(r"^[\x00-\x20]*([A-Za-z][A-Za-z0-9+.\-]*)\s*:")
# Browsers drop tabs and line breaks anywhere in a URL ("java\tscript:" is "javascript:").
_URL_IGNORED = re.compile(r"[\t\n\r]")


# What _SCHEME would find allowed, told by startswith (the links every message carries, the
# unsubscribe, manage and view links, are https: three regular expressions a message).
_WEB = ("https://", "http://")
assert {"http", "https"} <= content.URL_SCHEMES


def _url(value) -> Markup:
    """A value that starts a URL attribute: http, https, mailto, tel or a relative URL only."""
    text = value if type(value) is str else str.__str__(_text(value))
    if "\t" in text or "\n" in text or "\r" in text:
        text = _URL_IGNORED.sub("", text)
    if not text.startswith(_WEB):
        scheme = _SCHEME.match(text)
        if scheme and scheme.group(1).lower() not in content.URL_SCHEMES:
            return Markup("")
    return _escape(text)


def _str_filter(fn):
    def wrapped(value, *args, **kwargs):
        return fn(_text(value), *args, **kwargs)

    return wrapped


@pass_eval_context
def _replace(eval_ctx, value, old, new, count=None):
    text, old, new = _text(value), _text(old), _text(new)
    hits = text.count(old) if old else len(text) + 1
    if count is not None:
        hits = min(hits, max(int(count), 0))
    if len(text) + hits * (len(new) - len(old)) > MAX_OUTPUT:
        raise _Exceeded(f"replace would make more than {MAX_OUTPUT:,} characters")
    count = -1 if count is None else int(count)
    markup_in = hasattr(old, "__html__") or hasattr(new, "__html__")
    if eval_ctx.autoescape and markup_in and not hasattr(text, "__html__"):
        text = escape(text)
    return text.replace(old, new, count)


@pass_eval_context
def _join(eval_ctx, value, d="", attribute=None):
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    parts = [_scalar_text(item) for item in value]
    separator = _text(d)
    if sum(map(len, parts)) + len(separator) * max(len(parts) - 1, 0) > MAX_OUTPUT:
        raise _Exceeded(f"join would make more than {MAX_OUTPUT:,} characters")
    if eval_ctx.autoescape:
        return escape(separator).join(escape(p) for p in parts)
    return separator.join(parts)


@pass_environment
def _sum(environment, iterable, attribute=None, start=0):
    # Numbers only: summing lists (start=[]) could build a list of a trillion items.
    if not isinstance(start, int | float | Decimal) or isinstance(start, bool):
        raise SecurityError("sum adds numbers only")
    return do_sum(environment, iterable, attribute=attribute, start=start)


def _urlencode(value) -> str:
    if isinstance(value, dict):
        return "&".join(
            f"{quote(_scalar_text(k), safe='')}={quote(_scalar_text(v), safe='')}"
            for k, v in value.items()
        )
    return quote(_text(value), safe="/")


def _striptags(value) -> str:
    # The result is plain text (escaped again when printed in HTML), never marked safe.
    return Markup(_text(value)).striptags()  # noqa: S704


def _wordcount(value) -> int:
    return len(_text(value).split())


def _escape_filter(value) -> Markup:
    if hasattr(value, "__html__"):
        return Markup(value)  # noqa: S704 - already markup (escaped or a macro's output)
    return escape(_text(value))


def _default(value, default_value="", boolean=False):
    """Jinja's default, but an empty or missing value counts as missing too: a subscriber with no
    first name gets "Hello there", not "Hello " (the way authors expect `default` to work)."""
    if isinstance(value, Undefined) or value is None or value == "" or (boolean and not value):
        return default_value
    return value


FILTERS = {
    "abs": abs,
    "capitalize": _str_filter(lambda s: s.capitalize()),
    "count": len,
    "d": _default,
    "default": _default,
    "dictsort": do_dictsort,
    "e": _escape_filter,
    "escape": _escape_filter,
    "filesizeformat": do_filesizeformat,
    "first": do_first,
    "float": do_float,
    "groupby": do_groupby,
    "int": do_int,
    "items": do_items,
    "join": _join,
    "last": do_last,
    "length": len,
    "list": do_list,
    "lower": _str_filter(lambda s: s.lower()),
    "map": do_map,
    "max": do_max,
    "min": do_min,
    "reject": do_reject,
    "rejectattr": do_rejectattr,
    "replace": _replace,
    "reverse": do_reverse,
    "round": do_round,
    "select": do_select,
    "selectattr": do_selectattr,
    "sort": do_sort,
    "string": _text,
    "striptags": _striptags,
    "sum": _sum,
    "title": _str_filter(lambda s: s.title()),
    "trim": _str_filter(lambda s, chars=None: s.strip(chars)),
    "truncate": pass_environment(
        lambda env, s, *args, **kwargs: do_truncate(env, _text(s), *args, **kwargs)
    ),
    "unique": do_unique,
    "upper": _str_filter(lambda s: s.upper()),
    "urlencode": _urlencode,
    "wordcount": _wordcount,
    # Used by compiled templates for values inside attributes (content.Restorer).
    "mm_attr": _attr,
    "mm_url": _url,
}

_SAFE_TESTS = [
    "defined",
    "undefined",
    "none",
    "boolean",
    "false",
    "true",
    "integer",
    "float",
    "number",
    "string",
    "mapping",
    "sequence",
    "iterable",
    "even",
    "odd",
    "divisibleby",
    "eq",
    "equalto",
    "==",
    "ne",
    "!=",
    "lt",
    "<",
    "le",
    "<=",
    "gt",
    ">",
    "ge",
    ">=",
    "greaterthan",
    "lessthan",
    "in",
    "sameas",
]
TESTS = {name: JINJA_TESTS[name] for name in _SAFE_TESTS}
TESTS["lower"] = lambda value: _text(value).islower()
TESTS["upper"] = lambda value: _text(value).isupper()

_STR_METHODS = frozenset(
    [
        "lower",
        "upper",
        "title",
        "capitalize",
        "casefold",
        "swapcase",
        "strip",
        "lstrip",
        "rstrip",
        "startswith",
        "endswith",
        "split",
        "rsplit",
        "splitlines",
        "count",
        "find",
        "rfind",
        "isdigit",
        "isalpha",
        "isalnum",
        "isnumeric",
        "isdecimal",
        "islower",
        "isupper",
        "isspace",
        "istitle",
    ]
)
_DICT_METHODS = frozenset({"get", "keys", "values", "items"})
_SEQUENCE_METHODS = frozenset({"count", "index"})
_LOOP_ATTRIBUTES = frozenset(
    [
        "index",
        "index0",
        "revindex",
        "revindex0",
        "first",
        "last",
        "length",
        "depth",
        "depth0",
        "previtem",
        "nextitem",
        "cycle",
        "changed",
    ]
)
# A width or precision of 1,000 or more, or one taken from the arguments (*), with or without
# a mapping key ("%(n)0999999999d").
_FORMAT_WIDTH = re.compile(
    r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d{4,})|%(?:\([^)]*\))?[-#0 +]*\d*\.(?:\*|\d{4,})"
)
# What one % conversion may add beyond its value: a width and a precision under 1,000 each.
_FORMAT_SPEC_ROOM = 2_000


def _is_number(value) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _bits(value) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _check_int_size(left, right, bits: int) -> None:
    """Refuse an integer result of more than MAX_INT_BITS before computing it: squaring a
    number of a million digits takes seconds and each further squaring three times as long."""
    if isinstance(left, int) and isinstance(right, int) and bits > MAX_INT_BITS:
        raise _Exceeded(f"numbers are limited to {MAX_INT_BITS:,} bits (about 1,200 digits)")


def _check_format_size(template: str, args) -> None:
    """Refuse `"%s%s..." % (a, b, ...)` whose result would pass the output cap (its pieces are
    each under the cap, the whole need not be)."""
    if isinstance(args, dict):
        values = args.values()
    else:
        values = args if isinstance(args, tuple) else [args]
    size = len(template) + template.count("%") * _FORMAT_SPEC_ROOM
    size += sum(len(v) if isinstance(v, str) else 0 for v in values)
    if size > MAX_OUTPUT:
        raise _Exceeded(f"% formatting would make more than {MAX_OUTPUT:,} characters")


def _range(*args):
    _check_clock()
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:  # more numbers than a C integer holds
        length = MAX_RANGE + 1
    if length > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE:,} numbers")
    return numbers


class _Blank(ChainableUndefined):
    """What a missing value is: prints as nothing, and attribute access, calls, arithmetic and
    comparisons with it do not fail (so one subscriber's missing attribute never stops a send);
    as a number it is 0 (`range(missing)` is empty)."""

    __slots__ = ()

    def _same(self, *args, **kwargs):
        return self

    def _false(self, other):
        return False

    def _zero(self):
        return 0

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _same
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _same
    __mod__ = __rmod__ = __pow__ = __rpow__ = __pos__ = __neg__ = __call__ = _same
    __round__ = __abs__ = _same
    __lt__ = __le__ = __gt__ = __ge__ = _false
    __index__ = __int__ = _zero

    def __float__(self):
        return 0.0


class CampaignSandbox(ImmutableSandboxedEnvironment):
    # Every arithmetic operator, so that integer sizes are checked before Python computes
    # them (and none is folded into a constant at compile time, where no cap applies).
    intercepted_binops = frozenset({"*", "+", "-", "**", "%", "/", "//"})

    def __init__(self, *, html: bool):
        super().__init__(
            autoescape=html,
            undefined=_Blank,
            finalize=_finalize,
            trim_blocks=not html,
            lstrip_blocks=not html,
            auto_reload=False,
            cache_size=0,
        )
        self.filters = dict(FILTERS)
        self.tests = dict(TESTS)
        self.globals = {"range": _range}

    # Attributes: dictionary keys before dict methods (an attribute named "items" is the
    # attribute), and on values only the allowlisted methods.
    def getattr(self, obj, attribute):
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value):
        # Jinja2 hands out a sandboxed str.format / format_map; its widths are unbounded
        # ('{:>999999999}'.format(1) builds a gigabyte), so they are methods like any other
        # outside the allowlist.
        return None

    def is_safe_attribute(self, obj, attr, value):
        if attr.startswith("_") or not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, str):
            return attr in _STR_METHODS
        if isinstance(obj, dict):
            return attr in _DICT_METHODS
        if isinstance(obj, list | tuple):
            return attr in _SEQUENCE_METHODS
        if isinstance(obj, LoopContext):
            return attr in _LOOP_ATTRIBUTES
        return isinstance(obj, Undefined)

    def call(self, context, obj, /, *args, **kwargs):
        _check_clock()
        if isinstance(obj, Undefined) and obj._undefined_exception is SecurityError:
            # A method outside the allowlist ('{:>999999999}'.format(1), str.center...):
            # refused with its name rather than silently printing nothing.
            raise SecurityError(f"'{obj._undefined_name}' cannot be called in a template")
        for arg in args:
            if isinstance(arg, str | list | tuple) and len(arg) > MAX_OUTPUT:
                raise _Exceeded(f"a value longer than {MAX_OUTPUT:,} cannot be passed on")
        return super().call(context, obj, *args, **kwargs)

    def call_binop(self, context, operator, left, right):
        _check_clock()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    limit = MAX_OUTPUT if isinstance(seq, str) else MAX_SEQUENCE
                    if len(seq) * times > limit:
                        raise _Exceeded(f"the result would be longer than {limit:,}")
            _check_int_size(left, right, _bits(left) + _bits(right))
        elif operator in ("+", "-"):
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                limit = MAX_OUTPUT if isinstance(left, str) else MAX_SEQUENCE
                if len(left) + len(right) > limit:
                    raise _Exceeded(f"the result would be longer than {limit:,}")
            _check_int_size(left, right, max(_bits(left), _bits(right)) + 1)
        elif operator == "**":
            if _is_number(left) and _is_number(right):
                # A float or Decimal power overflows at once; an integer one is computed in
                # full, so its size is estimated first (bits of the base times the exponent).
                if abs(right) > 1000:
                    raise _Exceeded("that power is too large")
                if isinstance(right, int) and right > 0:
                    _check_int_size(left, right, _bits(left) * right)
        elif operator == "%" and isinstance(left, str):
            values = (
                right.values()
                if isinstance(right, dict)
                else (right if isinstance(right, tuple) else (right,))
            )
            if any(isinstance(v, Undefined) for v in values):
                return self.undefined()  # formatting a missing value prints nothing
            if _FORMAT_WIDTH.search(left):
                raise _Exceeded("% formatting with widths of 1,000 or more is not allowed")
            if isinstance(right, tuple):
                right = tuple(_plain_arg(v) for v in right)
            elif isinstance(right, dict):
                right = {k: _plain_arg(v) for k, v in right.items()}
            else:
                right = _plain_arg(right)
            _check_format_size(left, right)
        return super().call_binop(context, operator, left, right)

    # Called from compiled templates only (EnvironmentAttribute nodes put in by _guard).
    def mm_loop(self, iterable, static_size: int = 0):
        budget = _budget
        for item in iterable:
            budget.iterations += 1
            if budget.iterations > MAX_ITERATIONS:
                raise _Exceeded(f"loops ran more than {MAX_ITERATIONS:,} times")
            if not budget.iterations & 1023:
                _check_clock()
            if static_size:
                _charge(static_size)
            yield item

    def mm_text(self, value):
        return _text(value)

    def mm_sized(self, value):
        if len(value) > MAX_OUTPUT:
            raise _Exceeded(f"a value longer than {MAX_OUTPUT:,} characters")
        return value


def _plain_arg(value):
    if isinstance(value, bool | int | float | Decimal):
        return value
    return _text(value)


HTML_ENV = CampaignSandbox(html=True)
TEXT_ENV = CampaignSandbox(html=False)


# -- compiling one template ----------------------------------------------------------------------


def _call_environment(name: str, args: list, lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None, lineno=lineno)


def _guard(node: nodes.Node) -> None:
    """Put the loop guard around every {% for %}'s iterable, and the size check around every
    `~` (whose operands are printed as plain values first: no repr of a list of a million)."""
    for child in node.iter_child_nodes():
        _guard(child)
    for name in node.fields:
        value = getattr(node, name, None)
        if isinstance(value, nodes.Concat):
            setattr(node, name, _sized_concat(value))
        elif isinstance(value, list) and any(isinstance(v, nodes.Concat) for v in value):
            setattr(
                node,
                name,
                [_sized_concat(v) if isinstance(v, nodes.Concat) else v for v in value],
            )
    if isinstance(node, nodes.For):
        static = sum(_static_size(child) for child in node.body)
        node.iter = _call_environment("mm_loop", [node.iter, nodes.Const(static)], node.lineno)


def _static_size(node: nodes.Node) -> int:
    """The template text one iteration of a loop body may output: nested loops charge their own
    and a macro's text is charged where it is printed."""
    if isinstance(node, nodes.TemplateData):
        return len(node.data)
    if isinstance(node, nodes.For | nodes.Macro):
        return 0
    return sum(_static_size(child) for child in node.iter_child_nodes())


def _sized_concat(node: nodes.Concat) -> nodes.Call:
    node.nodes = [_call_environment("mm_text", [n], node.lineno) for n in node.nodes]
    return _call_environment("mm_sized", [node], node.lineno)


_FORBIDDEN = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


def compile_template(env: CampaignSandbox, source: str, field: str):
    """Parse, check and compile one template; TemplateProblem with the line when it cannot be
    used."""
    filename = f"<{field}>"
    try:
        tree = env.parse(source, name=field, filename=filename)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(field, exc.lineno, exc.message or str(exc)) from None
    for node in tree.find_all(_FORBIDDEN):
        raise TemplateProblem(
            field, node.lineno, "a campaign template cannot extend, include or import templates"
        )
    for node in tree.find_all(nodes.Filter):
        if node.name not in env.filters:
            raise TemplateProblem(field, node.lineno, f"unknown filter '{node.name}'")
    for node in tree.find_all(nodes.Test):
        if node.name not in env.tests:
            raise TemplateProblem(field, node.lineno, f"unknown test '{node.name}'")
    _guard(tree)
    tree.set_environment(env)
    try:
        code = env.compile(tree, name=field, filename=filename)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(field, exc.lineno, exc.message or str(exc)) from None
    template = _from_code(env, code)
    template.mm_tree = tree
    return template


def _from_code(env: CampaignSandbox, code):
    # A plain dict, not Jinja2's default ChainMap: every render copies the globals into a new
    # context, and iterating a ChainMap is Python code (a quarter of the render time).
    template = env.template_class.from_code(env, code, dict(env.globals))
    # The compiled module's `escape` (what autoescaping calls for every printed value) is
    # _escape: the same results, fewer Python calls (see _escape).
    if _escape_inner is not None:
        template.root_render_func.__globals__["escape"] = _escape
    return template


def _references(tree: nodes.Template, name: str, attribute_of: str | None = None) -> bool:
    for node in tree.find_all(nodes.Name):
        if node.name == name and node.ctx == "load":
            return True
    if attribute_of:
        for node in tree.find_all(nodes.Getattr):
            if (
                node.attr == name
                and isinstance(node.node, nodes.Name)
                and node.node.name == attribute_of
            ):
                return True
    return False


# -- running a template under the caps -------------------------------------------------------------


def _run(template, context: dict, field: str, limit: int, extra: dict | None = None) -> str:
    # Joined in C; what a runaway template can build before the length is checked is bounded
    # by the work budget (every printed value and every loop iteration is charged).
    try:
        output = "".join(template.root_render_func(template.new_context(context, locals=extra)))
    except SecurityError as exc:
        raise RenderError(field, str(exc)) from exc
    except RecursionError as exc:
        raise RenderError(field, "macros call themselves too deeply") from exc
    except Exception as exc:
        raise RenderError(field, f"{type(exc).__name__}: {exc}") from exc
    if len(output) > limit:
        raise RenderError(field, f"the output is longer than {limit:,} characters")
    return output


def _one_line(subject: str) -> str:
    # A subject is one header line: CR, LF and other line breaks and NUL never reach it.
    return " ".join(subject.replace("\x00", "").split())


class _Rendering:
    """The budget of one recipient's render, for the three parts together."""

    def __enter__(self):
        # The CPU clock is a system call (thread_time(): 1-2 us alone, and on a loaded machine
        # a point where the thread is often preempted: a tenth of a worker's CPU per message
        # at load ~15). A campaign renders thousands of messages a second, so it is read at
        # most every CPU_MARK_S, and the render starts from that reading plus the wall time
        # since: an upper bound of the CPU clock now (a thread's CPU time grows no faster than
        # the wall clock), so what _check_clock computes is a lower bound of the CPU time the
        # render used. A render is stopped only when it certainly used RENDER_TIME_LIMIT, and
        # at most CPU_MARK_S later than an exact reading would stop it.
        wall = perf_counter()
        budget = _budget
        budget.deadline = wall + RENDER_TIME_LIMIT
        if not 0 <= wall - budget.mark_wall <= CPU_MARK_S:
            budget.mark_wall = wall
            budget.mark_cpu = thread_time()
        budget.cpu_start = budget.mark_cpu + (wall - budget.mark_wall)
        _budget.iterations = 0
        _budget.work = 0
        return self

    def __exit__(self, *exc):
        _budget.deadline = _NEVER


def _error_line(exc: BaseException, template) -> int | None:
    """The template line a runtime error happened on (the deepest frame of that template)."""
    line = None
    while exc is not None:
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            if frame.f_code.co_filename == template.filename:
                line = template.get_corresponding_lineno(lineno)
        exc = exc.__cause__
    return line


def _try_render(template, context: dict, field: str, extra: dict | None = None) -> None:
    """Render once with sample data at compile time; a failure becomes a TemplateProblem."""
    with _Rendering():
        try:
            _run(template, context, field, MAX_OUTPUT, extra)
        except RenderError as exc:
            raise TemplateProblem(field, _error_line(exc, template), exc.message) from None


# -- the compiled campaign ------------------------------------------------------------------------


@dataclass
class CompiledCampaign:
    """A campaign's three templates, compiled. `render` runs them whole; once
    `split_for_sending()` has run (the engine does, once per campaign per worker) it renders the
    parts that are the same for every recipient once and, per recipient, only what differs."""

    campaign_id: int
    links: list[str]
    subject_template: object = field(repr=False)
    html_template: object | None = field(repr=False)
    text_template: object = field(repr=False)
    html_source: str | None = field(default=None, repr=False)
    text_source: str = field(default="", repr=False)
    squeeze_text: bool = field(default=False, repr=False)
    text_field: str = field(default="text_body", repr=False)

    def split_for_sending(self) -> None:
        """Pre-split each template into its constant text and its holes (see SplitTemplate), so
        that rendering a recipient's message evaluates each distinct value once. Costs a few
        milliseconds per template; worth it only for many renders (a send, not a preview)."""
        self._split = {
            "subject": SplitTemplate.of(self.subject_template, "subject"),
            "body": SplitTemplate.of(self.html_template, "body") if self.html_template else None,
            self.text_field: SplitTemplate.of(self.text_template, self.text_field),
        }
        self._fused = self._fuse()

    def _fuse(self) -> tuple[_Piece, int] | None:
        """The subject's and the text part's expressions of a recipient's own as one template
        (both are rendered in the text environment), and how many are the subject's: one
        Jinja call a recipient fewer in render_values (~3 us of call overhead). Not when the
        text part prints `subject`, which is the subject's output."""
        subject, text = self._split.get("subject"), self._split.get(self.text_field)
        if subject is None or text is None or self.html_template is None:
            return None
        subject_own, text_own = subject.own_piece(), text.own_piece()
        if subject_own is None or text_own is None or "subject" in text_own.names:
            return None
        env = self.text_template.environment
        if self.subject_template.environment is not env:
            return None
        exprs = [*subject_own.exprs, *text_own.exprs]
        tree = nodes.Template([nodes.Output(exprs, lineno=1)], lineno=1)
        tree.set_environment(env)
        code = env.compile(tree, name=self.text_field, filename=self.text_template.filename)
        names = tuple(sorted({*subject_own.names, *text_own.names}))
        return _Piece(_from_code(env, code), names, False, len(exprs)), subject_own.count

    def _part(self, template, context, field, limit, extra=None) -> str:
        split = getattr(self, "_split", None)
        if split is not None and split.get(field) is not None:
            try:
                return split[field].render(context, limit, extra)
            except _SplitMismatch:
                logger.warning("rendering the %s whole: its split did not match", field)
                split[field] = None
        return _run(template, context, field, limit, extra)

    def splits(self) -> tuple[SplitTemplate, SplitTemplate] | None:
        """(HTML, text) as split by split_for_sending(), when both parts are split."""
        split = getattr(self, "_split", None)
        if split is None or self.html_template is None:
            return None
        html, text = split.get("body"), split.get(self.text_field)
        return None if html is None or text is None else (html, text)

    def render_values(self, context: dict) -> SplitValues | None:
        """This recipient's subject and the values of the split HTML and text parts (their
        SplitTemplate.values), under the same budget, caps and errors as render(), which is
        `join()` of them (and the text squeezed): for a caller that puts the values into
        pre-built bytes itself. None when the parts are not both split (render() then)."""
        splits = self.splits()
        if splits is None:
            return None
        html_split, text_split = splits
        fused = getattr(self, "_fused", None)
        if fused is not None:
            values = self._fused_values(context, fused, html_split, text_split)
            if values is not None:
                return values
        with _Rendering():
            subject = _one_line(self._part(self.subject_template, context, "subject", MAX_SUBJECT))
            extra = {"subject": subject}
            try:
                html = html_split.values(context, MAX_OUTPUT, extra)
                text = text_split.values(context, MAX_OUTPUT, extra)
            except _SplitMismatch as exc:
                field = str(exc)
                logger.warning("rendering the %s whole: its split did not match", field)
                self._split[field] = None
                return None
            _check_time(self.text_field)
        return SplitValues(subject, html, text)

    def _fused_values(self, context, fused, html_split, text_split) -> SplitValues | None:
        """render_values() with the subject's and the text part's own values from one call
        (_fuse), or None when anything fails or differs: the caller then renders the usual way,
        which makes the error (or the values) exactly as before. Only the order differs (the
        text part's own values are charged to the work budget before the HTML part's), and a
        render that passes every cap in one order passes them in the other (the budget only
        grows, to the same total)."""
        piece, subject_count = fused
        subject_split = self._split.get("subject")
        if subject_split is None or self._split.get(self.text_field) is not text_split:
            return None
        try:
            with _Rendering():
                values = piece.values(context, self.text_field, MAX_OUTPUT, None)
                subject_own = values[:subject_count]
                if max(map(len, subject_own)) > MAX_SUBJECT:
                    return None
                subject_values = subject_split.values(context, MAX_SUBJECT, None, subject_own)
                subject = _one_line(subject_split.join(subject_values))
                extra = {"subject": subject}
                html = html_split.values(context, MAX_OUTPUT, extra)
                text = text_split.values(context, MAX_OUTPUT, extra, values[subject_count:])
                _check_time(self.text_field)
        except RenderError:
            return None
        except _SplitMismatch:
            self._fused = None  # the usual way from now on (which sees to the mismatch)
            return None
        return SplitValues(subject, html, text)

    def render(self, context: dict) -> RenderedMessage:
        """This recipient's message. Raises RenderError when a part fails or hits a cap."""
        with _Rendering():
            part = self._part
            subject = _one_line(part(self.subject_template, context, "subject", MAX_SUBJECT))
            extra = {"subject": subject}
            html = None
            if self.html_template is not None:
                html = part(self.html_template, context, "body", MAX_OUTPUT, extra)
            text = part(self.text_template, context, self.text_field, MAX_OUTPUT, extra)
            _check_time(self.text_field)
        return RenderedMessage(subject=subject, html=html, text=self.squeezed(text))

    def squeezed(self, text: str) -> str:
        if self.squeeze_text:
            # Lines left empty by {% if %} blocks: at most one blank line (str.replace is a
            # tenth of the cost of a regular expression here).
            while "\n\n\n" in text:
                text = text.replace("\n\n\n", "\n\n")
        return text

    def joined(self, values: SplitValues) -> RenderedMessage:
        """The message render() makes, from render_values() of the same recipient."""
        html_split, text_split = self.splits()
        return RenderedMessage(
            subject=values.subject,
            html=html_split.join(values.html),
            text=self.squeezed(text_split.join(values.text)),
        )


def _check_time(field: str) -> None:
    try:
        _check_clock()
    except _Exceeded as exc:
        raise RenderError(field, str(exc)) from None


# -- contexts ------------------------------------------------------------------------------------


def workspace_context(workspace) -> dict:
    return {
        "name": workspace.name,
        "postal_address": layouts.postal_address(workspace.postal_address),
        # The same, line by line, for HTML: a loop over it is shared by every recipient (a
        # method call such as .splitlines() would make it a per-recipient piece).
        "postal_lines": layouts.postal_address(workspace.postal_address).splitlines(),
        "sender_name": workspace.sender_name or workspace.name,
    }


def campaign_context(campaign) -> dict:
    lists = []
    if campaign.pk is not None:
        lists = list(campaign.lists.order_by("name").values_list("name", flat=True))
    return {"name": campaign.name, "subject": campaign.subject, "lists": lists}


def recipient_context(
    *, workspace: dict, campaign: dict, subscriber: dict, urls: dict, data: dict | None = None
) -> dict:
    """The template context for one recipient, from plain dicts (see the module docstring)."""
    if "postal_lines" not in workspace:  # a dict made by hand, not by workspace_context()
        lines = layouts.postal_address(workspace.get("postal_address", "")).splitlines()
        workspace = {**workspace, "postal_lines": lines}
    name = subscriber.get("name") or ""
    last_name = subscriber.get("last_name") or ""
    first_name = subscriber.get("first_name") or ""
    if not first_name and name.strip() and name.strip() != last_name.strip():
        # A full name kept whole (not a last name alone): its first word is the best guess.
        first_name = name.split()[0]
    person = {
        "uuid": str(subscriber.get("uuid") or ""),
        "email": subscriber.get("email") or "",
        "name": name,
        "first_name": first_name,
        "last_name": last_name,
        "attributes": subscriber.get("attributes") or {},
    }
    return {
        "subscriber": person,
        "campaign": campaign,
        "workspace": workspace,
        "postal_address": workspace.get("postal_address", ""),
        "lists": campaign.get("lists", []),
        "unsubscribe_url": urls.get("unsubscribe_url", ""),
        "manage_url": urls.get("manage_url", ""),
        "view_in_browser_url": urls.get("view_in_browser_url", ""),
        "data": data or {},
    }


# -- pre-split templates (the send path) -----------------------------------------------------------

# Names of recipient_context() (and `subject`, given to the bodies) whose values are the same for
# every recipient of a campaign. Any other name a piece of template reads makes it per recipient,
# including names added to recipient_context() later.
SHARED_NAMES = frozenset({"workspace", "campaign", "postal_address", "lists", "data", "range"})
CONTEXT_NAMES = frozenset(
    {*recipient_context(workspace={}, campaign={}, subscriber={}, urls={}), "subject"}
)
# Statements after which the rest of the template could see a different scope (set, macros,
# blocks): a template holding any of them anywhere is rendered whole, as before.
_UNSPLITTABLE = (
    nodes.Assign,
    nodes.AssignBlock,
    nodes.Macro,
    nodes.CallBlock,
    nodes.Block,
    nodes.ExprStmt,
    nodes.Scope,
    nodes.OverlayScope,
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.ContextReference,
    nodes.DerivedContextReference,
)
# What a pure piece may hold: its output depends only on the names it reads (no Call but the
# guards the compiler puts in; every filter in FILTERS is a function of its arguments).
_PURE = (
    nodes.Name,
    nodes.Const,
    nodes.TemplateData,
    nodes.Output,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.Test,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.BinExpr,
    nodes.UnaryExpr,
    nodes.Concat,
    nodes.Tuple,
    nodes.List,
    nodes.Dict,
    nodes.Pair,
    nodes.Keyword,
    nodes.If,
    nodes.For,
    nodes.EnvironmentAttribute,
    nodes.Template,
)


def _pure(node: nodes.Node) -> bool:
    for child in [node, *node.find_all(nodes.Node)]:
        if isinstance(child, nodes.Call):
            if not isinstance(child.node, nodes.EnvironmentAttribute):
                return False
        elif not isinstance(child, _PURE):
            return False
    return True


def _names(node: nodes.Node) -> list[nodes.Name]:
    # find_all() leaves out the node itself, which may be the Name.
    return [node] if isinstance(node, nodes.Name) else list(node.find_all(nodes.Name))


def _shared(node: nodes.Node) -> bool:
    """True when the piece's output is the same for every recipient of a campaign."""
    if not _pure(node):
        return False
    stored = {n.name for n in _names(node) if n.ctx in ("store", "param")}
    for name in _names(node):
        if name.ctx != "load" or name.name in SHARED_NAMES or name.name == "loop":
            continue
        if name.name in stored and name.name not in CONTEXT_NAMES:
            continue  # a loop variable of this piece
        return False
    return True


class _SplitMismatch(Exception):
    """An expression piece did not yield one value per expression."""


class _Piece:
    """Holes of a split template compiled as a template of their own (so they run in the same
    sandbox with the same finalize, escaping and caps): either expressions, whose template
    yields exactly one value each, or one statement, whose output is one value."""

    __slots__ = ("cache", "count", "exprs", "names", "shared", "statement", "template")

    def __init__(self, template, names: tuple[str, ...], shared: bool, count: int):
        self.statement = count == 0
        count = count or 1
        self.template = template
        self.names = names
        self.shared = shared
        self.count = count  # values it gives: the expressions, or 1 for a statement
        # Shared pieces: (the values of their names, their values, their total length).
        self.cache = None
        # An expression piece's expressions (CompiledCampaign fuses two pieces' into one).
        self.exprs: list[nodes.Node] = []

    def values(self, context: dict, field: str, limit: int, extra: dict | None) -> list[str]:
        if self.shared:
            key = tuple(map(context.get, self.names))
            cache = self.cache
            if cache is not None and cache[0] == key:
                _budget.work += cache[2]
                return cache[1]
        try:
            template = self.template
            values = list(template.root_render_func(template.new_context(context, locals=extra)))
        except SecurityError as exc:
            raise RenderError(field, str(exc)) from exc
        except RecursionError as exc:
            raise RenderError(field, "macros call themselves too deeply") from exc
        except Exception as exc:
            raise RenderError(field, f"{type(exc).__name__}: {exc}") from exc
        if self.statement:
            values = ["".join(values)]
        elif len(values) != self.count:
            # Jinja2 folds neighbouring constants into one value; the expressions here are not
            # constant, so this does not happen, and if it did the part is rendered whole.
            raise _SplitMismatch(field)
        if max(map(len, values)) > limit:
            raise RenderError(field, f"the output is longer than {limit:,} characters")
        if self.shared:
            self.cache = (key, values, sum(map(len, values)))
        return values


def _constant(node: nodes.Node, eval_ctx) -> bool:
    try:
        node.as_const(eval_ctx)
    except Exception:  # nodes.Impossible, or whatever folding it would raise
        return False
    return True


class SplitTemplate:
    """A template as constant text and holes, for rendering it to many recipients.

    A campaign's body is mostly text that is the same for everyone, with a few values that
    differ (`{{ subscriber.first_name | default("there") }}` twenty times). Jinja2 evaluates,
    finalizes and escapes each occurrence; here the template's distinct expressions are
    compiled into one template that yields each of their values once per recipient, reused for
    every occurrence, and the expressions that read only what is the same for every recipient
    (workspace, campaign, postal_address, lists, data) into another, rendered once and kept
    while those values stay equal. Top-level statements ({% if %}, {% for %}, {% with %}) are
    holes too, each rendered whole. Caps hold as in a whole render: each reuse is charged to
    the work budget, the part's length is checked at the end, and the clock is read by the
    pieces as before. A template that sets variables, defines macros or blocks is rendered
    whole, as before.

    Per-recipient links (tracked links, an open pixel) fit in `render`: the constant text
    (`self.items`, str entries, where a campaign's links are) is joined there with this
    recipient's values, the one place per recipient where a part's text is put together.
    """

    def __init__(self, field: str, items: list, pieces: list[_Piece]):
        self.field = field
        self.items = items  # str (constant text) or int (index into the values of the pieces)
        self.pieces = pieces
        # The part as a list to fill in: the constant text in place, an empty slot for each
        # value, and where each value goes; a render copies the list, puts the values in and
        # joins it in C. (str.format of a pattern re-parses the whole ~7 KB text for its braces
        # on every call: 12 us against 1.4 us for the same body.) And the values printed more
        # than once, charged to the work budget again for each reuse, as a whole render would.
        self.skeleton = [item if isinstance(item, str) else "" for item in items]
        self.slots = [(at, item) for at, item in enumerate(items) if not isinstance(item, str)]
        uses: dict[int, int] = {}
        for _, item in self.slots:
            uses[item] = uses.get(item, 0) + 1
        self.reused = [(index, count - 1) for index, count in uses.items() if count > 1]
        self.constant_size = sum(len(item) for item in items if isinstance(item, str))
        # Which values are the same for every recipient (those of shared pieces).
        self.shared_values = [piece.shared for piece in pieces for _ in range(piece.count)]
        # The pieces in runs: one piece of a recipient's own, or neighbouring shared pieces,
        # looked up together (see values()).
        self.runs: list[tuple[_Piece | None, list[_Piece], tuple[str, ...]]] = []
        for piece in pieces:
            if not piece.shared:
                self.runs.append((piece, [], ()))
            elif self.runs and self.runs[-1][0] is None:
                self.runs[-1][1].append(piece)
            else:
                self.runs.append((None, [piece], ()))
        self.runs = [
            (own, run, tuple(sorted({name for p in run for name in p.names})))
            for own, run, _ in self.runs
        ]
        # Per run of shared pieces: (the values of their names, their values, their length).
        self.shared_cache: dict[int, tuple] = {}

    @classmethod
    def of(cls, template, field: str) -> SplitTemplate | None:
        tree = getattr(template, "mm_tree", None)
        if tree is None or any(True for _ in tree.find_all(_UNSPLITTABLE)):
            return None
        for node in tree.find_all(nodes.EvalContextModifier):
            if not isinstance(node, nodes.ScopedEvalContextModifier):
                return None
        for node in tree.find_all(nodes.Name):
            if node.name in ("self", "super", "caller", "varargs", "kwargs"):
                return None
        env = template.environment
        eval_ctx = nodes.EvalContext(env, field)

        def compile_piece(body: list[nodes.Node], names: set[str], shared: bool, count: int):
            piece_tree = nodes.Template(body, lineno=1)
            piece_tree.set_environment(env)
            code = env.compile(piece_tree, name=field, filename=template.filename)
            compiled = _from_code(env, code)
            return _Piece(compiled, tuple(sorted(names)), shared, count)

        # Each item: constant text, or (kind, position): kind "own"/"shared" for an expression
        # (its position among the distinct expressions of that kind), "stmt" for a statement.
        items: list = []
        exprs: dict[str, dict[str, nodes.Node]] = {"own": {}, "shared": {}}
        statements: list[nodes.Node] = []
        for node in tree.body:
            if isinstance(node, nodes.Output):
                for child in node.nodes:
                    if isinstance(child, nodes.TemplateData):
                        items.append(child.data)
                    elif _constant(child, eval_ctx) or not _pure(child):
                        statements.append(nodes.Output([child], lineno=child.lineno))
                        items.append(("stmt", len(statements) - 1))
                    else:
                        kind = "shared" if _shared(child) else "own"
                        key = repr(child)
                        exprs[kind].setdefault(key, child)
                        items.append((kind, list(exprs[kind]).index(key)))
            else:
                statements.append(node)
                items.append(("stmt", len(statements) - 1))

        pieces: list[_Piece] = []
        offset: dict[str, int] = {}
        for kind in ("own", "shared"):
            found = list(exprs[kind].values())
            if found:
                offset[kind] = sum(p.count for p in pieces)
                names = {n.name for e in found for n in _names(e) if n.ctx == "load"}
                body = [nodes.Output(found, lineno=found[0].lineno)]
                pieces.append(compile_piece(body, names, kind == "shared", len(found)))
                pieces[-1].exprs = found
        for node in statements:
            offset.setdefault("stmt", sum(p.count for p in pieces))
            names = {n.name for n in _names(node) if n.ctx == "load"}
            pieces.append(compile_piece([node], names, _shared(node), 0))
        resolved: list = []
        for item in items:
            if isinstance(item, tuple):
                item = offset[item[0]] + item[1]
            if isinstance(item, str) and resolved and isinstance(resolved[-1], str):
                resolved[-1] += item  # neighbouring constant text joined once
            else:
                resolved.append(item)
        split = cls(field, resolved, pieces)
        return split

    def render(self, context: dict, limit: int, extra: dict | None = None) -> str:
        return self.join(self.values(context, limit, extra))

    def values(
        self, context: dict, limit: int, extra: dict | None = None, own_values=None
    ) -> list[str]:
        """This recipient's values (`self.items`' int entries index them), charged to the
        budget and checked against the caps as the whole part would be: join() of them is the
        part, and the part's length is checked here (the pre-built messages of the send path,
        delivery/prebuilt.py, put the values into bytes without joining the text).
        `own_values`: the values of the part's one piece of a recipient's own, rendered
        already (CompiledCampaign.render_values)."""
        values: list[str] = []
        budget = _budget
        for at, (own, run, names) in enumerate(self.runs):
            if own is not None:
                if own_values is not None:
                    values.extend(own_values)
                else:
                    values.extend(own.values(context, self.field, limit, extra))
                continue
            # Shared pieces: the values of all their names looked at once, as each piece's own
            # cache (_Piece.values) would, and charged to the budget as those would be (a part
            # has a few: its shared expressions, a loop over the postal address, the lists).
            key = tuple(map(context.get, names))
            cached = self.shared_cache.get(at)
            if cached is not None and cached[0] == key:
                budget.work += cached[2]
                values.extend(cached[1])
                continue
            found = []
            for piece in run:
                found.extend(piece.values(context, self.field, limit, extra))
            self.shared_cache[at] = (key, found, sum(map(len, found)))
            values.extend(found)
        # The part's length: its constant text and each value as often as it is printed
        # (every value is printed at least once).
        size = self.constant_size + sum(map(len, values))
        for index, again in self.reused:
            reprinted = len(values[index]) * again
            budget.work += reprinted
            size += reprinted
        if budget.work > MAX_WORK:
            raise RenderError(
                self.field, f"the template produces more than {MAX_WORK:,} characters"
            )
        # Each value is at most `limit` long (Piece.values), and the work budget bounds them
        # all together, so what join() makes is bounded too.
        if size > limit:
            raise RenderError(self.field, f"the output is longer than {limit:,} characters")
        return values

    def own_piece(self) -> _Piece | None:
        """The part's one piece of a recipient's own, when it has one and it is expressions."""
        own = [piece for piece in self.pieces if not piece.shared]
        if len(own) != 1 or own[0].statement or not own[0].exprs:
            return None
        return own[0]

    def join(self, values: list[str]) -> str:
        """The part, from values() of one recipient."""
        parts = self.skeleton.copy()
        for at, index in self.slots:
            parts[at] = values[index]
        return "".join(parts)


SAMPLE_SUBSCRIBER = {
    "uuid": "00000000-0000-4000-8000-000000000000",
    "email": "jane.doe@example.com",
    "name": "Jane Doe",
    "first_name": "Jane",
    "last_name": "Doe",
    "attributes": {},
}


def sample_urls() -> dict:
    # Inert links: the preview token is not a valid signature, so following one changes nothing.
    return {
        "unsubscribe_url": f"{settings.BASE_URL}/f/u/preview",
        "manage_url": f"{settings.BASE_URL}/f/m/preview",
        "view_in_browser_url": f"{settings.BASE_URL}/f/archive/preview",
    }


def sample_context(workspace: dict, campaign: dict, subscriber: dict | None = None) -> dict:
    return recipient_context(
        workspace=workspace,
        campaign=campaign,
        subscriber=subscriber or SAMPLE_SUBSCRIBER,
        urls=sample_urls(),
    )


# -- compiling a campaign ------------------------------------------------------------------------

# ASCII only: one non-ASCII character in the part every message shares (a "·" here once) makes
# every message quoted-printable, which profiled at ~50 µs a part.
HTML_FOOTER = (
    '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">'
    '<tr><td align="center" style="padding: 16px; font-family: Arial, Helvetica, sans-serif; '
    'font-size: 12px; line-height: 1.5; color: #6b7280;">'
    "{{ workspace.name }}<br>{% for line in workspace.postal_lines %}{{ line }}<br>{% endfor %}"
    '<a href="{{ unsubscribe_url }}" style="color: #6b7280;">Unsubscribe</a> | '
    '<a href="{{ manage_url }}" style="color: #6b7280;">Manage your subscription</a>'
    "</td></tr></table>"
)
TEXT_FOOTER = (
    "\n\n--\n{{ workspace.name }}\n{{ postal_address }}\n\n"
    "Unsubscribe: {{ unsubscribe_url }}\nManage your subscription: {{ manage_url }}\n"
)
_BODY_END = re.compile(r"</body\s*>", re.I)
_FULL_DOCUMENT = re.compile(r"<(?:html|body)\b", re.I)


@dataclass(frozen=True)
class ContentSpec:
    """What a campaign's content is made of (a campaign, or unsaved changes to one)."""

    kind: str
    subject: str
    body_format: str  # "markdown" | "html" | "text"
    body: str
    text_body: str = ""
    layout_html: str | None = None  # None: the built-in default layout


def _with_html_footer(source: str) -> str:
    ends = list(_BODY_END.finditer(source))
    if not ends:
        return source + HTML_FOOTER
    at = ends[-1].start()
    return source[:at] + HTML_FOOTER + source[at:]


def _placeholders(*sources: str) -> content.Placeholders:
    while True:
        ph = content.Placeholders()
        try:
            ph.check_unused(*sources)
        except ValueError:  # the random nonce happens to be in the content: draw another
            continue
        return ph


def _build_html(body_format: str, body: str, layout: str | None):
    """(HTML template source, the sanitised document with placeholders, the placeholders)."""
    ph = _placeholders(body, layout or "")
    if layout is not None:
        layout_protected = content.protect(layout, mode="html", field="layout", ph=ph, slot=True)
    first_body_tag = len(ph.tags)
    mode = "markdown" if body_format == "markdown" else "html"
    body_protected = content.protect(body, mode=mode, field="body", ph=ph)
    body_html = content.markdown_to_html(body_protected) if mode == "markdown" else body_protected
    if layout is None:
        document = body_html
    else:
        document = layout_protected.replace(ph.slot, body_html)
        # Document order: the layout's tags before the slot, the body's, the layout's after.
        ph.order = (
            list(range(ph.slot_at))
            + list(range(first_body_tag, len(ph.tags)))
            + list(range(ph.slot_at, first_body_tag))
        )
    doc = content.sanitise_document(document, ph)
    return content.restore_document(doc, ph), doc, ph


def compile_content(
    spec: ContentSpec,
    *,
    workspace: dict,
    campaign: dict,
    campaign_id: int = 0,
    urls: dict | None = None,
) -> CompiledCampaign:
    """Compile a campaign's content; TemplateProblem names the field and line to fix. `urls`:
    the sample links (sample_urls() when None)."""
    sample = recipient_context(
        workspace=workspace,
        campaign=campaign,
        subscriber=SAMPLE_SUBSCRIBER,
        urls=urls if urls is not None else sample_urls(),
    )
    marketing = spec.kind == "marketing"

    subject = compile_template(TEXT_ENV, spec.subject, "subject")
    _try_render(subject, sample, "subject")
    sample_subject = {"subject": "Sample subject"}

    if spec.body_format == "text":
        body = compile_template(TEXT_ENV, spec.body, "body")
        _try_render(body, sample, "body", sample_subject)
        html_template = html_source = None
        text_source = spec.body
        links = content.text_links(spec.body)
    else:
        body = compile_template(HTML_ENV, spec.body, "body")
        _try_render(body, sample, "body", sample_subject)
        full_document = spec.body_format == "html" and _FULL_DOCUMENT.search(spec.body)
        layout_source = None
        trees = [body.mm_tree]
        if not full_document:
            layout_source = spec.layout_html
            if layout_source is None:
                layout_source = default_layout_html()
            layout = compile_template(HTML_ENV, layout_source, "layout")
            _try_render(layout, {**sample, "content": ""}, "layout", sample_subject)
            trees.append(layout.mm_tree)
        body_source = spec.body
        # Marketing mail always shows the postal address and an unsubscribe link: a layout or
        # body that shows neither gets our footer.
        if marketing and _footer_missing(trees):
            if layout_source is None:
                body_source = _with_html_footer(body_source)
            else:
                layout_source = _with_html_footer(layout_source)
        html_source, doc, ph = _build_html(spec.body_format, body_source, layout_source)
        links = content.html_links(doc.body, ph)
        if spec.text_body.strip():
            text_source = spec.text_body
            links += content.text_links(spec.text_body)
        else:
            text_source = _text_from_html(doc, ph)
    # The text template is what the author wrote (text body, or a text-only campaign's body:
    # its lines are theirs) or made from the HTML (its lines are nobody's).
    written = spec.body_format == "text" or bool(spec.text_body.strip())
    text_field = "body" if spec.body_format == "text" else "text_body"
    with _made_from_content(None if written else "the text version"):
        text_template = compile_template(TEXT_ENV, text_source, text_field)
        if marketing and _footer_missing([text_template.mm_tree]):
            text_source = text_source.rstrip("\n") + TEXT_FOOTER
            text_template = compile_template(TEXT_ENV, text_source, text_field)
        _try_render(text_template, sample, text_field, sample_subject)
    html_template = None
    if html_source is not None:
        with _made_from_content("the HTML made from the content and layout"):
            html_template = compile_template(HTML_ENV, html_source, "body")
            _try_render(html_template, sample, "body", sample_subject)
    has_statements = any(True for _ in text_template.mm_tree.find_all(nodes.Stmt))
    return CompiledCampaign(
        campaign_id=campaign_id,
        text_field=text_field,
        links=content.unique(links),
        subject_template=subject,
        html_template=html_template,
        text_template=text_template,
        html_source=html_source,
        text_source=text_source,
        squeeze_text=has_statements,
    )


@contextmanager
def _made_from_content(what: str | None):
    """Problems in a template we generated have no line the author could look up."""
    try:
        yield
    except TemplateProblem as problem:
        if what is None:
            raise
        raise TemplateProblem(problem.field, None, f"{problem.message} (in {what})") from None


def _footer_missing(trees: list[nodes.Template]) -> bool:
    """True when neither the body nor the layout links to unsubscribe_url, or neither shows
    the postal address."""
    unsubscribe = any(_references(t, "unsubscribe_url") for t in trees)
    address = any(
        _references(t, "postal_address", attribute_of="workspace")
        or _references(t, "postal_lines", attribute_of="workspace")
        for t in trees
    )
    return not (unsubscribe and address)


def _text_from_html(doc: content.Document, ph: content.Placeholders) -> str:
    pattern = ph.pattern()

    def keep_statements(text: str) -> str:
        return "".join(
            ph.word(int(m.group(1)))
            for m in pattern.finditer(text)
            if ph.tags[int(m.group(1))].kind == "stmt"
        )

    text = content.html_to_text(doc.body, keep_statements)
    restorer = content.Restorer(ph)
    restored = restorer.plain(text)
    restorer.check(html=False)
    return restored


def spec_for(campaign) -> ContentSpec:
    from .models import Layout

    layout_html = None
    if campaign.layout_id:
        layout_html = campaign.layout.html
    else:
        default = (
            Layout.objects.filter(workspace_id=campaign.workspace_id, is_default=True)
            .values_list("html", flat=True)
            .first()
        )
        layout_html = default
    return ContentSpec(
        kind=campaign.kind,
        subject=campaign.subject,
        body_format=campaign.body_format,
        body=campaign.body,
        text_body=campaign.text_body,
        layout_html=layout_html,
    )


def compile_campaign(campaign) -> CompiledCampaign:
    """Compile once per campaign (per worker); raises TemplateProblem."""
    return compile_content(
        spec_for(campaign),
        workspace=workspace_context(campaign.workspace),
        campaign=campaign_context(campaign),
        campaign_id=campaign.pk or 0,
    )


# -- isolated: what the web server does, in a child process -------------------------------------
#
# The caps above stop a template between operations; they cannot stop one C-level operation
# that runs long, and a web request is a thread, which nothing can interrupt. So the web server
# (save-time checks, previews, the public pages) compiles and renders in a child process under
# a hard limit (lib.bounded: killed after ISOLATED_SECONDS, refused past ISOLATED_MEMORY), at a
# cost of about 10 ms a call. The worker compiles once per campaign and renders in-process: it
# is a process of its own, and the caps fail one recipient fast.

_PRELOAD = ("mailmarketer.campaigns.rendering",)


def _outcome(work, *args):
    # Runs in the child. TemplateProblem and RenderError do not survive pickling (their
    # __init__ takes more than the message), so they travel as tuples.
    try:
        return ("ok", work(*args))
    except TemplateProblem as problem:
        return ("problem", problem.field, problem.line, problem.message)
    except RenderError as exc:
        return ("render", exc.field, exc.message)


def _links_of(spec: ContentSpec, workspace: dict, campaign: dict, urls: dict) -> list[str]:
    return compile_content(spec, workspace=workspace, campaign=campaign, urls=urls).links


def _rendered(
    spec: ContentSpec, workspace: dict, campaign: dict, urls: dict, context: dict
) -> RenderedMessage:
    compiled = compile_content(spec, workspace=workspace, campaign=campaign, urls=urls)
    return compiled.render(context)


def _plain(spec: ContentSpec) -> ContentSpec:
    # str, not the models' TextChoices: the spec travels pickled to a child process that has
    # no models loaded.
    return replace(spec, kind=str(spec.kind), body_format=str(spec.body_format))


def _isolated(work, spec: ContentSpec, *args, field: str = "body"):
    try:
        outcome = run_bounded(
            _outcome,
            (work, _plain(spec), *args),
            seconds=ISOLATED_SECONDS,
            memory=ISOLATED_MEMORY,
            preload=_PRELOAD,
        )
    except Overrun as exc:
        raise TemplateProblem(
            field, None, f"the template cannot be rendered within the limits: {exc}"
        ) from None
    except MemoryError:
        raise TemplateProblem(
            field, None, "the template needs more memory than a message may use"
        ) from None
    kind, *rest = outcome
    if kind == "problem":
        raise TemplateProblem(*rest)
    if kind == "render":
        raise RenderError(*rest)
    return rest[0]


@dataclass(frozen=True)
class CheckedContent:
    """What saving a campaign keeps from compiling it."""

    links: list[str]


def check_content(spec: ContentSpec, *, workspace: dict, campaign: dict) -> CheckedContent:
    """compile_content in a child process under the hard limit: TemplateProblem or the links."""
    return CheckedContent(links=_isolated(_links_of, spec, workspace, campaign, sample_urls()))


def check_campaign(campaign) -> CheckedContent:
    """compile_campaign in a child process under the hard limit (for the web server)."""
    return check_content(
        spec_for(campaign),
        workspace=workspace_context(campaign.workspace),
        campaign=campaign_context(campaign),
    )


def render_isolated(campaign, context: dict) -> RenderedMessage:
    """compile_campaign(campaign).render(context) in a child process under the hard limit:
    TemplateProblem, RenderError or the message."""
    return _isolated(
        _rendered,
        spec_for(campaign),
        workspace_context(campaign.workspace),
        campaign_context(campaign),
        sample_urls(),
        context,
    )
