"""benchmarks/pins_size.py on a release of a few files: each step that reads the previous release carries the pins
of the files it reads (Pins.only), against every pin of the release (the whole Pins), and the graph is smaller."""

from __future__ import annotations

import re

from benchmarks import pins_size


def test_each_step_carries_the_pins_of_its_own_files_and_the_graph_shrinks(monkeypatch, capsys):
    shards, ledger, other = 4, 2, 3
    monkeypatch.setattr("sys.argv", ["pins_size", f"--shards={shards}", f"--ledger={ledger}", f"--other={other}"])
    pins_size.main()
    lines = capsys.readouterr().out.splitlines()
    files = shards + ledger + other
    assert re.fullmatch(rf"{files} files pinned; the whole Pins pickled: [\d,]+ bytes", lines[0])
    summary = re.compile(r"(whole Pins per step|Pins\.only): job graph ([\d,]+) bytes; carried pins ([\d,]+) bytes, "
                         r"([\d,]+) entries")
    step = re.compile(r"    (\S+): ([\d,]+) entries, ([\d,]+) bytes")
    sections: dict[str, tuple[int, int, dict[str, int]]] = {}
    name = ""
    for line in lines[1:-1]:
        if found := summary.fullmatch(line):
            name = found.group(1)
            sections[name] = (number(found.group(2)), number(found.group(4)), {})
        else:
            carried = step.fullmatch(line)
            assert carried and name, line
            sections[name][2][carried.group(1)] = number(carried.group(2))
    whole, only = sections["whole Pins per step"], sections["Pins.only"]
    steps = {"CarriedIds/Ids", "CarryOver/Rows", "ReadLedger/Files", "ReadLedger/Rows"}
    assert set(whole[2]) == set(only[2]) == steps
    assert set(whole[2].values()) == {files}  # every step carried every pin
    # the release's Parquet shards for the carried rows and ids, the ledger's files for the ledger: never the rest
    assert only[2] == {"CarriedIds/Ids": shards, "CarryOver/Rows": shards, "ReadLedger/Files": ledger,
                       "ReadLedger/Rows": ledger}
    assert whole[1] == sum(whole[2].values()) and only[1] == sum(only[2].values())  # the totals add up
    ratio = re.fullmatch(r"job graph: (\d\.\d{3})x the whole Pins' size", lines[-1])
    assert ratio, lines[-1]
    assert only[0] < whole[0] and float(ratio.group(1)) == round(only[0] / whole[0], 3)


def number(text: str) -> int:
    return int(text.replace(",", ""))
