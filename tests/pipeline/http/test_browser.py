"""The web page in headless Chromium over a real ``mmrag serve``: ask, read the cited answer, play the cited second.

Drives Debian's Chromium (``/usr/bin/chromium``) through Playwright's Python package, which carries its own
driver and downloads nothing when given a browser. Every request the page makes that is not for the
server's own origin is aborted and recorded, and the test process runs under the ``no_network`` guard.
Screenshots go to ``$MMRAG_TEST_ARTIFACTS`` (default ``.test-artifacts/`` in the checkout).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, Response, Route, ViewportSize, expect, sync_playwright

from mmrag.pipeline.api import ingest
from mmrag.pipeline.config import Config
from mmrag.pipeline.http.app import create_app

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
SAMPLE_DRIVE = REPO / "data" / "sample-drive"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # no host name resolves, so nothing the guard below cannot see (Chromium's own services) gets out either
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
TOKEN = "browser-test-token"
WAIT_MS = 120_000  # the first question loads the text model in the server

# Fires for media elements anywhere in the page (capture phase): what the player did, with its clock.
MEDIA_LOG = """
window.mediaLog = [];
for (const type of ["loadedmetadata", "seeked", "playing"]) {
  document.addEventListener(type, (e) => window.mediaLog.push([type, e.target.currentTime]), true);
}
"""
# Once the player has data: the second it started playing from, or where it waits if autoplay was refused.
PLAYER_STARTED = """() => {
  const p = document.getElementById("player");
  if (!p || p.readyState < 2 || p.seeking) return null;
  const playing = window.mediaLog.find(([type]) => type === "playing");
  if (playing) return { from: playing[1] };
  return p.paused ? { from: p.currentTime } : null;
}"""
THUMBNAILS_SHOWN = """() => [...document.querySelectorAll("#cards img")].every(
  (img) => (img.complete && img.naturalWidth > 0) || img.getBoundingClientRect().top > window.innerHeight)"""


def _artifacts() -> Path:
    folder = Path(os.environ.get("MMRAG_TEST_ARTIFACTS") or REPO / ".test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless Debian Chromium; skipped where it is missing, except in CI, where that is a failure.

    Playwright gives it a fresh profile; its home is a temporary folder too, so crash reports, caches and
    sound-server files stay out of the user's ``~/.config``, ``~/.cache`` and ``/tmp``.
    """
    if not CHROMIUM.exists():
        reason = (
            f"{CHROMIUM} not found: the browser test needs Debian's Chromium "
            "(`sudo apt-get install chromium`; `./bootstrap.sh test` installs it)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("chromium-home")
    (home / "run").mkdir(mode=0o700)
    env: dict[str, str | float | bool] = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_RUNTIME_DIR": str(home / "run"),  # where the sound library puts its sockets, instead of /tmp/pulse-*
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, env=env)
        yield browser
        browser.close()


@contextmanager
def _page(browser: Browser, base: str) -> Iterator[Page]:
    """A page in a fresh context that may load from ``base`` only; fails on other requests and on JS errors."""
    context = browser.new_context(viewport=VIEWPORT, service_workers="block")
    elsewhere: list[str] = []
    problems: list[str] = []

    def only_this_server(route: Route) -> None:
        url = route.request.url
        if url.startswith(base + "/"):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", only_this_server)
    context.add_init_script(MEDIA_LOG)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("response", lambda res: problems.append(f"{res.status} {res.url}") if res.status >= 400 else None)
    try:
        yield page
    finally:
        context.close()
    assert elsewhere == [], f"the page tried to load from outside the server: {elsewhere}"
    assert problems == [], problems


def _answer_event(body: str) -> dict[str, object]:
    """The ``answer`` event of an /api/ask stream, as the server sent it (not as the page shows it)."""
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        if fields["event"] == "answer":
            data: dict[str, object] = json.loads(fields["data"])
            return data
    raise AssertionError(f"no answer event in the stream: {body[:500]}")


def _ask(page: Page, question: str | None) -> dict[str, object]:
    """Types ``question`` into the focused box (or re-submits what is there) with Enter; returns the answer."""

    def is_ask(response: Response) -> bool:
        return "/api/ask?" in response.url

    with page.expect_response(is_ask, timeout=WAIT_MS) as asked:
        if question is not None:
            page.keyboard.type(question)
        page.keyboard.press("Enter")
    answer = _answer_event(asked.value.text())
    page.wait_for_function("document.querySelectorAll('#answer .cite').length > 0", timeout=WAIT_MS)
    return answer


def _timed_citation(answer: dict[str, object], source: str) -> dict[str, object]:
    citations = answer["citations"]
    assert isinstance(citations, list)
    found = [c for c in citations if c["source"] == source and "start" in c["locator"]]
    assert found, f"no citation of {source} with a time span: {citations}"
    citation: dict[str, object] = found[0]
    assert re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", str(citation["cite"])), citation
    return citation


def _play_citation(page: Page, citation: dict[str, object]) -> float:
    """Clicks the [n] marker of a video citation; returns the second the player started from."""
    marker = page.get_by_role("button", name=f"citation {citation['n']}: {citation['source']}, {citation['cite']}")
    expect(marker).to_have_text(str(citation["n"]))
    marker.click()
    expect(page.locator("#viewer")).to_be_visible()
    expect(page.locator("#viewer-title")).to_have_text(f"{citation['source']} — {citation['cite']}")
    expect(page.locator("#viewer video#player")).to_be_visible()
    started = page.wait_for_function(PLAYER_STARTED, timeout=30_000).json_value()
    return float(started["from"])


def _screenshot(page: Page, name: str) -> Path:
    path = _artifacts() / name
    page.screenshot(path=str(path))
    with Image.open(path) as shot:
        assert shot.size == (VIEWPORT["width"], VIEWPORT["height"])
        grey = np.asarray(shot.convert("L"))
    assert path.stat().st_size > 20_000 and int(grey.max()) - int(grey.min()) > 100, f"{path} looks blank"
    print(f"screenshot: {path}")
    return path


def test_ask_the_sample_drive_in_the_page_and_play_the_cited_video(
    chromium: Browser, live_server: Callable[[object], str], cfg: Config, no_network: list[str]
) -> None:
    report = ingest([SAMPLE_DRIVE], cfg)
    assert "media/jfk_clip.mp4" in report.ingested and report.skipped == []
    base = live_server(create_app(cfg))
    with _page(chromium, base) as page:
        page.goto(base + "/")
        expect(page.locator("#status")).to_have_text(f"{report.chunks} chunks indexed")
        expect(page.locator("#q")).not_to_be_focused()
        page.keyboard.press("/")  # the page's shortcut to the question box
        expect(page.locator("#q")).to_be_focused()

        answer = _ask(page, "What does the speaker in the video ask his fellow Americans?")
        assert answer["declined"] is False
        expect(page.locator("#answer")).to_contain_text("ask not what your country can do for you")
        video = _timed_citation(answer, "media/jfk_clip.mp4")
        cards = page.locator("#cards .card")
        expect(cards.first).to_contain_text("media/jfk_clip.mp4")
        expect(cards.first.locator(".badge")).to_have_text(f"[{answer['citations'][0]['n']}]")  # type: ignore[index]
        expect(page.locator("#status")).to_contain_text("citation(s)")
        expect(cards.first.locator("img")).to_be_visible()  # the cited moment shows its frame
        page.wait_for_function(THUMBNAILS_SHOWN)
        shot = _screenshot(page, "web-answer.png")

        start = float(video["locator"]["start"])  # type: ignore[index]
        assert abs(_play_citation(page, video) - start) < 0.5, page.evaluate("window.mediaLog")
        player = page.locator("#player")
        assert abs(float(player.evaluate("p => p.duration")) - 11.0) < 0.5  # the clip itself was served
        _screenshot(page, "web-player.png")
        page.keyboard.press("Escape")
        expect(page.locator("#viewer")).to_be_hidden()
        # closing the viewer stops the sound (the dialog's close event comes after it is hidden)
        page.wait_for_function("() => document.getElementById('player').paused", timeout=5000)

        page.select_option("#modality", "speech")
        page.locator("#q").focus()
        only_speech = _ask(page, None)
        hits = only_speech["hits"]
        assert isinstance(hits, list) and hits and {h["modality"] for h in hits} == {"speech"}
        metas = page.locator("#cards .card .meta").all_inner_texts()
        assert metas and all(re.match(r"(\[\d+\] ?)?speech · ", m) for m in metas), metas
    assert shot.exists()


def _briefing_video(path: Path, speech: Path, lead: float) -> None:
    """An H.264/AAC MP4 (what browsers play): a still title card, silence, then ``speech`` from ``lead`` seconds."""
    import av

    from mmrag.ingest.engines.speech import decode_audio

    sr, fps = 16_000, 2
    audio = np.concatenate(
        [np.zeros(int(lead * sr), np.float32), decode_audio(speech, sr), np.zeros(2 * sr, np.float32)]
    )
    card = Image.new("RGB", (640, 360), (24, 60, 110))
    ImageDraw.Draw(card).text((40, 160), "Pet safety briefing", fill=(255, 255, 255))
    rgb = np.asarray(card)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        sound = out.add_stream("aac", rate=sr)
        sound.layout = "mono"
        for i in range(int(audio.size / sr * fps)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for i in range(0, audio.size, 1024):
            piece = av.AudioFrame.from_ndarray(audio[None, i : i + 1024], format="fltp", layout="mono")
            piece.sample_rate, piece.pts = sr, i
            for packet in sound.encode(piece):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)


@pytest.mark.parametrize("token", [None, TOKEN], ids=["open", "with-token"])
def test_the_player_starts_at_a_cited_second_inside_the_video(
    chromium: Browser,
    live_server: Callable[[object], str],
    tmp_path: Path,
    cfg: Config,
    no_network: list[str],
    token: str | None,
) -> None:
    drive = tmp_path / "drive"
    drive.mkdir()
    _briefing_video(drive / "briefing.mp4", SAMPLE_DRIVE / "media" / "rec_005.wav", lead=20.0)
    assert ingest([drive], cfg).ingested == ["briefing.mp4"]
    base = live_server(create_app(cfg, token=token))
    with _page(chromium, base) as page:
        page.goto(f"{base}/?token={token}" if token else base + "/")
        expect(page).to_have_url(base + "/")  # a token leaves the address bar (and the history)
        expect(page.locator("#status")).to_contain_text("chunks indexed")
        page.locator("#q").focus()
        answer = _ask(page, "Who almost hurt the small dog?")
        expect(page.locator("#answer")).to_contain_text("The child almost hurt the small dog")
        video = _timed_citation(answer, "briefing.mp4")
        start = float(video["locator"]["start"])  # type: ignore[index]
        assert 19.0 <= start <= 21.0, video  # the words come after 20 s of silence
        assert abs(_play_citation(page, video) - start) < 0.5, page.evaluate("window.mediaLog")


def _answer_stream(answer: dict[str, object]) -> str:
    """An /api/ask body as the server sends it: the text as ``token`` events, then the ``answer`` event."""
    text = str(answer["answer"])
    tokens = "".join(f"event: token\ndata: {json.dumps({'text': text[i : i + 8]})}\n\n" for i in range(0, len(text), 8))
    return tokens + f"event: answer\ndata: {json.dumps(answer)}\n\n"


def _generated(text: str, flagged: list[str], removed: list[int]) -> dict[str, object]:
    """An ``answer`` event of a generated answer citing one text file, with what the citation check found."""
    citation = {
        "n": 1,
        "source": "finance/budget.txt",
        "modality": "text",
        "locator": {"section": []},
        "cite": "finance/budget.txt",
        "link": "file:///drive/finance/budget.txt",
        "quote": "The travel budget for 2025 is 48,000 euros.",
        "root": "/drive",
        "preview": "",
        "file": "",
    }
    return {
        "question": "What is the travel budget?",
        "answer": text,
        "citations": [citation],
        "declined": False,
        "extractive": False,
        "flagged": flagged,
        "removed_citations": removed,
        "strict": True,
        "hits": [],
    }


def test_the_page_warns_about_an_answer_the_citation_check_flagged(
    chromium: Browser, live_server: Callable[[object], str], cfg: Config
) -> None:
    """The answers come from a scripted /api/ask (the shape of the server's ``answer`` event); the page is real."""
    answers = [
        _generated("The travel budget for 2025 is 48,000 euros [1].", ["It was approved by Gandalf in March."], [7]),
        _generated("The travel budget for 2025 is 48,000 euros [1].", [], []),
    ]
    base = live_server(create_app(cfg))
    with _page(chromium, base) as page:
        page.route(
            "**/api/ask?**",
            lambda route: route.fulfill(
                status=200, headers={"Content-Type": "text/event-stream"}, body=_answer_stream(answers.pop(0))
            ),
        )
        page.goto(base + "/")
        page.locator("#q").focus()
        _ask(page, "What is the travel budget?")
        warning = page.locator("#answer-checks")
        expect(warning).to_be_visible()
        expect(warning).to_have_attribute("role", "alert")
        expect(warning).to_contain_text("Removed from it, because the evidence they cite does not support them")
        expect(warning.locator("li")).to_have_text(["It was approved by Gandalf in March."])
        expect(warning).to_contain_text("never given were removed: [7]")
        expect(page.locator("#answer")).to_contain_text("48,000 euros")
        page.screenshot(path=str(_artifacts() / "web-flagged-answer.png"))
        page.locator("#q").focus()
        _ask(page, None)  # the same question again, answered cleanly this time
        expect(warning).to_be_hidden()
