"""Parameter templates: native values, text, filters, strict undefined, the sandbox, syntax."""

from __future__ import annotations

from typing import Any

import pytest

from harness.engine import Template, TemplateFailure

CONTEXT: dict[str, Any] = {
    "index": 7,
    "key": "k7",
    "item": {"name": "dev", "tags": {"env": "prod"}, "sizes": [1, 2]},
    "job": "fleet",
    "step": "things",
}


def render(spec: Any, where: str = "step 's': params") -> Any:
    return Template(spec, where).render(CONTEXT)


class TestNative:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("{{ index }}", 7),
            ("  {{ index * 2 }}  ", 14),
            ("{{ item.tags }}", {"env": "prod"}),
            ("{{ item.sizes }}", [1, 2]),
            ("{{ index > 3 }}", True),
            ("{{ none }}", None),
            ("{{ index / 2 }}", 3.5),
            ("{{ [index, key] }}", [7, "k7"]),
            ("{{ item['name'] }}", "dev"),
            ("{{ job ~ '-' ~ step }}", "fleet-things"),
        ],
    )
    def test_a_whole_expression_keeps_its_type(self, spec: str, expected: Any) -> None:
        assert render(spec) == expected
        assert type(render(spec)) is type(expected)

    def test_literals_are_kept(self) -> None:
        spec = {"a": 1, "b": [True, None, 2.5], "c": "plain text", "d": {"e": "x"}}
        assert render(spec) == spec

    def test_nested_structures_are_rendered(self) -> None:
        spec = {"name": "d-{{ index }}", "attrs": {"n": "{{ index }}", "list": ["{{ key }}", 3]}}
        assert render(spec) == {"name": "d-7", "attrs": {"n": 7, "list": ["k7", 3]}}

    def test_a_template_can_render_the_whole_params(self) -> None:
        assert render("{{ item.tags }}") == {"env": "prod"}

    def test_the_spec_is_kept(self) -> None:
        assert Template({"a": "{{ index }}"}).spec == {"a": "{{ index }}"}


class TestText:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("dev-{{ index }}", "dev-7"),
            ("{{ index }}-{{ key }}", "7-k7"),
            ("{{ item.name }}{{ index }}", "dev7"),
            ("{{ '%05d' % index }}", "00007"),
            ("{% for s in item.sizes %}{{ s }},{% endfor %}", "1,2,"),
            ("{% if index is odd %}odd{% else %}even{% endif %}", "odd"),
            ("{{ item.name | upper }}", "DEV"),
        ],
    )
    def test_text(self, spec: str, expected: str) -> None:
        assert render(spec) == expected

    def test_no_autoescape(self) -> None:
        assert Template("<{{ v }}>&").render({"v": "a&b<c>"}) == "<a&b<c>>&"


class TestPad:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("{{ index | pad }}", "00007"),
            ("{{ index | pad(3) }}", "007"),
            ("{{ 123456 | pad(3) }}", "123456"),
            ("dev-{{ index | pad(4) }}", "dev-0007"),
            ("{{ key | pad(4) }}", "00k7"),
        ],
    )
    def test_pad(self, spec: str, expected: str) -> None:
        assert render(spec) == expected


class TestFailures:
    @pytest.mark.parametrize(
        "spec",
        ["{{ nope }}", "x-{{ nope }}", "{{ item.missing }}", "{{ item.tags.missing }}-x"],
    )
    def test_undefined_names_fail_with_the_location(self, spec: str) -> None:
        with pytest.raises(TemplateFailure) as info:
            render({"attrs": [{"v": spec}]})
        message = str(info.value)
        assert message.startswith("step 's': params.attrs[0].v: ")
        assert repr(spec) in message
        assert "undefined" in message or "has no attribute 'missing'" in message

    def test_an_undefined_name_is_never_an_empty_string(self) -> None:
        with pytest.raises(TemplateFailure):
            render("thing-{{ index_typo }}")

    def test_errors_during_rendering_name_the_value(self) -> None:
        with pytest.raises(TemplateFailure, match=r"^p: '\{\{ index / 0 \}\}': division by zero"):
            Template({"p": "{{ index / 0 }}"}).render(CONTEXT)

    @pytest.mark.parametrize(
        "spec",
        [
            "{{ ''.__class__ }}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "x{{ ''.__class__.__mro__ }}",
            "{{ item.__init__.__globals__ }}",
            "{{ item.tags.update({'env': 'dev'}) }}",
            "{{ item.sizes.append(3) }}",
            "{{ cycler.__init__.__globals__.os }}",
        ],
    )
    def test_the_sandbox_refuses_unsafe_access(self, spec: str) -> None:
        item = {"name": "dev", "tags": {"env": "prod"}, "sizes": [1, 2]}
        with pytest.raises(TemplateFailure):
            Template({"v": spec}).render({**CONTEXT, "item": item})
        assert item == {"name": "dev", "tags": {"env": "prod"}, "sizes": [1, 2]}  # immutable

    def test_unsafe_attribute_message(self) -> None:
        with pytest.raises(TemplateFailure, match=r"unsafe"):
            render("{{ ''.__class__.__mro__ }}")

    @pytest.mark.parametrize(
        ("spec", "reason"),
        [
            ("{{ index + }}", "unexpected"),
            ("name-{{ index", "unexpected end of template"),
            ("{% if index %}yes", "endif"),
            ("{{ index | nofilter }}", "No filter named 'nofilter'"),
        ],
    )
    def test_syntax_errors_are_found_when_compiling(self, spec: str, reason: str) -> None:
        with pytest.raises(TemplateFailure) as info:
            Template({"a": {"b": spec}}, "step 'x': params")
        message = str(info.value)
        assert message.startswith("step 'x': params.a.b: ")
        assert reason in message

    def test_a_failure_is_not_a_jinja_exception(self) -> None:
        with pytest.raises(TemplateFailure) as info:
            render("{{ nope }}")
        assert info.value.__cause__ is None
