"""Storage primitives: the indexed table, pagination tokens, the idempotency cache."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from harness.emulator._state import IdempotencyCache, Table, TokenCodec, params_digest


class TableMachine(RuleBasedStateMachine):
    """The table agrees with a plain dict (insertion order kept, moves go to the end)."""

    def __init__(self) -> None:
        super().__init__()
        self.table: Table[int, int] = Table()
        self.model: dict[int, int] = {}

    @rule(key=st.integers(0, 30), value=st.integers())
    def put(self, key: int, value: int) -> None:
        self.table.put(key, value)
        self.model[key] = value

    @rule(key=st.integers(0, 30), value=st.integers())
    def move(self, key: int, value: int) -> None:
        self.table.move_to_end(key, value)
        self.model.pop(key, None)
        self.model[key] = value

    @rule(key=st.integers(0, 30))
    def delete(self, key: int) -> None:
        assert self.table.delete(key) == self.model.pop(key, None)

    @rule(size=st.integers(1, 7), even=st.booleans())
    def paging_sees_everything_once(self, size: int, even: bool) -> None:
        keep = (lambda v: v % 2 == 0) if even else None
        seen: list[int] = []
        position: int | None = 0
        pages = 0
        while position is not None:
            page = self.table.page(position, size, keep)
            assert len(page.items) <= size
            if page.next_position is not None:
                assert page.items, "a page with a token must not be empty"
            seen.extend(page.items)
            position = page.next_position
            pages += 1
            assert pages <= len(self.model) + 1
        expected = [v for v in self.model.values() if keep is None or keep(v)]
        assert seen == expected

    @invariant()
    def agrees(self) -> None:
        assert len(self.table) == len(self.model)
        assert list(self.table.values()) == list(self.model.values())
        for key, value in self.model.items():
            assert self.table.get(key) == value and key in self.table


TestTable = TableMachine.TestCase
TestTable.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


class TestTablePositions:
    def test_positions_survive_deletes(self) -> None:
        table: Table[int, int] = Table()
        for i in range(10):
            table.put(i, i)
        first = table.page(0, 4)
        assert first.items == [0, 1, 2, 3]
        table.delete(4)
        table.delete(1)
        assert first.next_position is not None
        assert table.page(first.next_position, 100).items == [5, 6, 7, 8, 9]

    def test_last_page_has_no_position_even_with_trailing_deletes(self) -> None:
        table: Table[int, int] = Table()
        for i in range(5):
            table.put(i, i)
        table.delete(3)
        table.delete(4)
        assert table.page(0, 3).next_position is None


class TestTokens:
    @given(st.integers(0, 2**40), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
    def test_round_trip(self, position: int, params: dict[str, int]) -> None:
        codec = TokenCodec(b"k" * 16)
        binding = params_digest(params)
        token = codec.encode(position, binding)
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") and len(token) == 39
        assert codec.decode(token, binding) == position

    def test_foreign_forged_and_garbage_tokens(self) -> None:
        codec = TokenCodec(b"k" * 16)
        token = codec.encode(5, params_digest({"targetArn": "a"}))
        assert codec.decode(token, params_digest({"targetArn": "b"})) is None
        assert (
            TokenCodec(b"other-secret....").decode(token, params_digest({"targetArn": "a"})) is None
        )
        for junk in ("", "abc", "!!!", token[:-4] + "AAAA", "é"):
            assert codec.decode(junk, params_digest({"targetArn": "a"})) is None

    def test_digest_ignores_order_and_skipped_keys(self) -> None:
        assert params_digest({"a": 1, "b": 2}) == params_digest({"b": 2, "a": 1})
        assert params_digest({"a": 1, "t": "x"}, skip=("t",)) == params_digest({"a": 1})
        assert params_digest({"a": 1}) != params_digest({"a": 2})


def test_tokens_fit_every_next_token_pattern_of_the_five_models() -> None:
    from harness.model import SEED_SERVICES, load_service

    token = TokenCodec(b"k" * 16).encode(123456, params_digest({"a": 1}))
    checked = 0
    for service in SEED_SERVICES:
        model = load_service(service)
        for op in model.operations.values():
            if op.paginator is None or op.input is None:
                continue
            member = op.input.members.get(op.paginator.input_token[0])
            # Some shapes have max 0 (e.g. Proton's EmptyNextToken): those listings never page.
            if member is not None and member.shape.max != 0:
                assert model.validator.validate_shape(member.shape, token) == [], (service, op.name)
                checked += 1
    assert checked > 50


class TestIdempotencyCache:
    def test_expiry(self) -> None:
        cache = IdempotencyCache(ttl=10)
        key = ("acct", "us-east-1", "svc.Op", "tok")
        cache.begin(key, b"d", now=100)
        assert cache.get(key, now=105) is not None
        assert cache.get(key, now=111) is None
        assert len(cache) == 0


class TestTableLayout:
    """Saving a table keeps its tombstones, so pagination positions stay valid after a load."""

    def make(self) -> Table[str, int]:
        table: Table[str, int] = Table()
        for i in range(6):
            table.put(f"k{i}", i)
        table.delete("k1")
        table.delete("k4")
        return table

    def test_restored_tables_page_from_the_same_positions(self) -> None:
        table = self.make()
        copy = Table.restored(table.layout(), list(table.values()))
        assert copy.layout() == ["k0", None, "k2", "k3", None, "k5"]
        assert len(copy) == 4 and copy.get("k3") == 3 and "k1" not in copy
        first = table.page(0, 2)
        assert copy.page(0, 2) == first
        assert first.next_position is not None
        assert copy.page(first.next_position, 2) == table.page(first.next_position, 2)
        copy.put("k6", 6)  # appends after the saved slots, like the original would
        assert copy.layout()[-1] == "k6"

    def test_linked_tables_resolve_keys_to_shared_objects(self) -> None:
        named = {"a": [1], "b": [2]}
        with_gap, plain, missing = Table.linked([["a", None, "b"], ["b", "a"], None], named)
        assert with_gap is not None and plain is not None and missing is None
        assert with_gap.layout() == ["a", None, "b"] and with_gap.get("b") is named["b"]
        assert list(plain.values()) == [[2], [1]] and plain.page(1, 5).items == [[1]]

    def test_inconsistent_layouts_are_refused(self) -> None:
        with pytest.raises(ValueError, match="twice"):
            Table.restored(["a", "a"], [1, 2])
        with pytest.raises(ValueError):
            Table.restored(["a", None, "b"], [1])
        with pytest.raises(ValueError, match="twice"):
            Table.linked([["a", "a"]], {"a": 1})
        with pytest.raises(KeyError):
            Table.linked([["a", "zz"]], {"a": 1})
