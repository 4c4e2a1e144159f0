from core.cli import text_table


def test_text_table_lines_up_columns_and_cuts_the_widest():
    lines = [["run", "state"], ["a-long-run-name", "completed"], ["b", ""]]
    assert text_table(lines).splitlines() == [
        "run              state",
        "a-long-run-name  completed",
        "b",
    ]
    assert text_table(lines, widest=5).splitlines() == ["run    state", "a-lon  compl", "b"]
