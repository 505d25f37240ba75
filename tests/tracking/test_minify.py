from __future__ import annotations

import pytest

from tracking.minify import MinifyError, minify
from tracking.snippet import SNIPPET_MINIFIED, SNIPPET_SOURCE


def test_committed_minified_snippet_is_built_from_the_current_source():
    """Run `manage.py build_snippet` after editing cohortly.js."""
    assert SNIPPET_MINIFIED.read_text() == minify(SNIPPET_SOURCE.read_text())


def test_comments_and_needless_whitespace_go():
    src = "/* head */\nvar a = 1; // one\nfunction f (x, y) {\n  return x + y;\n}\n"
    assert minify(src) == "var a=1;function f(x,y){return x+y;}\n"


def test_literals_pass_through_untouched():
    src = "var s = 'a // b', t = \"/* c */\", u = `x  ${ y }  z`, r = /\\/+$/g, q = x.replace(/[/]  /, '');\n"
    assert minify(src) == "var s='a // b',t=\"/* c */\",u=`x  ${ y }  z`,r=/\\/+$/g,q=x.replace(/[/]  /,'');\n"


def test_division_is_not_taken_for_a_regular_expression():
    assert minify("var h = (a + b) / 2 / c;\n") == "var h=(a+b)/2/c;\n"
    assert minify("return /x/.test(s)\n") == "return/x/.test(s)\n"


def test_line_breaks_that_statements_may_rely_on_stay():
    src = "var a = b\nvar c = d\ni++\nj\nreturn\nx\n"
    assert minify(src) == "var a=b\nvar c=d\ni++\nj\nreturn\nx\n"


def test_operators_that_would_fuse_keep_a_space():
    assert minify("x = a - -b + +c - d;\n") == "x=a- -b+ +c-d;\n"


@pytest.mark.parametrize("src", ["var s = 'open\n';", "/* never closed", "var r = /open\n;", "`${ `x` }`"])
def test_input_it_cannot_read_is_refused(src):
    with pytest.raises(MinifyError):
        minify(src)
