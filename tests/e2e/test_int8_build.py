"""An int8 copy built from the Classify page in a real browser, by a real child process."""

import re
import shutil

import pytest

from tests.e2e.conftest import open_page, shot, streamlit_server

pytestmark = pytest.mark.e2e


def test_the_page_follows_a_build_and_answers_with_the_copy_once_it_is_done(
    e2e_data, page, tmp_path
):
    # A runs folder of its own: the copy would change what the shared server's tests see.
    [trained] = (e2e_data["base"] / "runs").glob("*e2e-trained*")
    shutil.copytree(trained, tmp_path / "runs" / trained.name)
    env = {**e2e_data["env"], "CNN_RUNS_DIR": str(tmp_path / "runs")}
    with streamlit_server({"env": env, "base": tmp_path}) as url:
        open_page(page, url, "classify")
        page.get_by_role("button", name="Build an int8 copy").click()
        page.get_by_text(re.compile(r"^Building the int8 copy in its own process")).wait_for()
        # Its first line, unless the build (a small model: seconds) ended between two polls.
        page.get_by_text(
            re.compile(r"^(Loading .* for the int8 copy of|int8 copy: \d+\.\d% on)")
        ).first.wait_for()
        shot(page, "classify-int8-building")
        # Nothing is clicked from here on: the page polls the build and redraws at its end.
        page.get_by_text(re.compile(r"^int8 copy: \d+\.\d% on \d+ val images")).wait_for(
            timeout=180_000
        )
        assert page.get_by_role("switch", name="Fast int8 answers").is_checked()
        assert page.get_by_role("button", name="Stop the build").count() == 0
        assert page.locator('[data-testid="stException"]').count() == 0
        shot(page, "classify-int8-built")
