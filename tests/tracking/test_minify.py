"""The snippet's minification (rjsmin): the committed file is the current source's, and what the
snippet's code relies on from the minifier holds (pinned, so that an upgrade changing it shows)."""

from __future__ import annotations

import pytest

from tracking.snippet import SNIPPET_MINIFIED, SNIPPET_SOURCE, snippet_minify


def test_committed_minified_snippet_is_built_from_the_current_source():
    """Run `manage.py build_snippet` after editing cohortly.js."""
    assert SNIPPET_MINIFIED.read_text() == snippet_minify(SNIPPET_SOURCE.read_text())


def test_the_minified_snippet_is_smaller_and_keeps_no_comment():
    source, minified = SNIPPET_SOURCE.read_text(), SNIPPET_MINIFIED.read_text()

    assert "/*" in source
    assert len(minified) < 0.75 * len(source)
    assert "\n  " not in minified


@pytest.mark.parametrize(
    ("source", "minified"),
    [
        # comments and needless whitespace go
        (
            "/* head */\nvar a = 1; // one\nfunction f (x, y) {\n  return x + y;\n}\n",
            "var a=1;function f(x,y){return x+y;}",
        ),
        # literals pass through untouched
        (
            "var s = 'a // b', t = \"/* c */\", u = `x  ${ y }  z`, r = /\\/+$/g, q = x.replace(/[/]  /, '');\n",
            "var s='a // b',t=\"/* c */\",u=`x  ${ y }  z`,r=/\\/+$/g,q=x.replace(/[/]  /,'');",
        ),
        # a division is not taken for a regular expression, nor the reverse
        ("var h = (a + b) / 2 / c;\n", "var h=(a+b)/2/c;"),
        ("return /x/.test(s)\n", "return/x/.test(s)"),
        # line breaks that statements may rely on stay
        ("var a = b\nvar c = d\ni++\nj\nreturn\nx\n", "var a=b\nvar c=d\ni++\nj\nreturn\nx"),
        # operators that would fuse keep a space
        ("x = a - -b + +c - d;\n", "x=a- -b+ +c-d;"),
    ],
)
def test_what_the_snippet_relies_on_from_the_minifier(source, minified):
    assert snippet_minify(source) == minified + "\n"
