"""The web page at / in a real headless Chromium (Selenium, Debian's chromium and chromedriver) against a real
uvicorn server with small local models: a segment classifier that explains its labels (billing / outage
tickets; the packaged MiniLM frozen, its head fitted in seconds) and a random tiny Longformer reader. What the
page shows is checked against what the API answers for the same request.

LONGDOC_SCREENSHOTS=1 also writes docs/images/web-page.png and web-page-qa.png."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[web-tests]'")
httpx = pytest.importorskip("httpx", reason="httpx is not installed: pip install -e '.[web-tests]'")

import torch  # noqa: E402
import transformers  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

import longdoc.assets  # noqa: E402
from longdoc import train_classifier  # noqa: E402
from longdoc.convert.seq2seq import warm_start_summarizer  # noqa: E402
from longdoc.data.labels import LabelSpace  # noqa: E402
from longdoc.families import get_family  # noqa: E402
from tiny_checkpoints import OFFICE_SENTENCES  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Chromium or chromedriver is not installed (the page is tested in a real browser): apt-get install "
           "chromium chromium-driver (`make test` installs them)")

API_KEY = "web-page-test-key"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "images"
FILLER = OFFICE_SENTENCES[:8]
NEEDLES = {
    "billing": ["The customer was charged twice on the last invoice and demands a refund of the duplicate payment.",
                "Her credit card was billed for a subscription she had cancelled, so she wants the money returned."],
    "outage": ["The database server crashed at midnight and the website has been unreachable ever since.",
               "Users cannot log in because the authentication service went down after the network failure."],
}


def ticket(rng: random.Random, label: str, sentences: int = 10) -> str:
    text = [rng.choice(FILLER) for _ in range(sentences)]
    at = rng.randint(3, sentences - 1)
    text[at:at] = [rng.choice(NEEDLES[label])]
    return " ".join(text)


def long_document(markup: bool = False) -> str:
    """Three paragraphs, an outage needle in the second. Its title is in mathematical bold letters, each a
    character Python counts as one and JavaScript as two: every offset after it differs between the API
    and the page. `markup`: a sentence of HTML, which must stay text."""
    rng = random.Random(3)
    text = [rng.choice(FILLER) for _ in range(36)]
    text[20:20] = [NEEDLES["outage"][0]]
    if markup:
        text[4:4] = ['Someone pasted <img src=x onerror="window.injected=1"> and <b>bold</b> here.']
    paragraphs = (" ".join(text[:12]), " ".join(text[12:26]), " ".join(text[26:]))
    return "𝐖𝐞𝐞𝐤𝐥𝐲 𝐧𝐨𝐭𝐞𝐬. " + "\n\n".join(paragraphs)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A segment classifier (billing / outage) on the packaged MiniLM, frozen; and on a tiny random BERT with
    MiniLM's WordPiece vocabulary (so that they read English), a Longformer reader, an LSG-BART summarizer and
    a HAT sentence classifier, all random."""
    root = tmp_path_factory.mktemp("web-models")
    minilm = longdoc.assets.packaged_minilm()
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm)
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=66, hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                                     initializer_range=0.1)
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(root / "bert")
    tokenizer.save_pretrained(root / "bert")
    for split, count, seed in (("train", 24, 0), ("dev", 8, 1)):
        rng = random.Random(seed)
        labels = [("billing", "outage")[i % 2] for i in range(count)]
        (root / f"{split}.jsonl").write_text("".join(json.dumps({"text": ticket(rng, label), "label": label}) + "\n"
                                                     for label in labels))
    train_classifier(root / "train.jsonl", root / "dev.jsonl", root / "tickets", family="segment",
                     model=str(minilm), freeze_encoder=True, chunk_size=30, epochs=1, batch_size=8, bf16=False,
                     cache_dir=root / "cache")
    reader, reader_tokenizer = get_family("longformer").build("spans", str(root / "bert"),
                                                              {"max_length": 128, "work_dir": str(root / "work")})
    reader.save_pretrained(root / "reader")
    reader_tokenizer.save_pretrained(root / "reader")
    warm_start_summarizer(root / "bert", root / "summarizer", max_length=96, decoder_layers=1, block_size=8,
                          sparse_block_size=8, sparsity_factor=2, num_global_tokens=2)
    labeller, labeller_tokenizer = get_family("hat").build(
        "sentences", str(root / "bert"), {"head_config": LabelSpace(("fact", "request"), False).config_fields(),
                                          "max_sentences": 8, "max_sentence_size": 24, "work_dir": str(root / "hat")})
    labeller.save_pretrained(root / "sentences")
    labeller_tokenizer.save_pretrained(root / "sentences")
    return {name: root / name for name in ("tickets", "reader", "summarizer", "sentences")}


@pytest.fixture(scope="module")
def server(models):
    from longdoc.serve import ServerThread, ServeSettings, create_app, load_served_models

    served = load_served_models([f"{name}={folder}" for name, folder in models.items()])
    with ServerThread(create_app(served, ServeSettings(api_key=API_KEY))) as running:
        yield running.url


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--lang=en-US"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # scroll at once (the page honours reduced motion): nothing moves under a click
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                           {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]})
    try:
        yield driver
    finally:
        driver.quit()


def api(server: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server}{path}", json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)


def open_page(browser, server: str, key: str | None = API_KEY) -> WebDriverWait:
    """The page, fresh, with `key` in its session storage (None: none); waits until the models are listed."""
    browser.get(f"{server}/")
    browser.execute_script("sessionStorage.clear(); if (arguments[0]) sessionStorage.setItem('longdoc.apiKey', "
                           "arguments[0]);", key)
    browser.refresh()
    wait = WebDriverWait(browser, 30)
    if key:
        wait.until(lambda b: b.find_element(By.ID, "model").is_enabled())
    return wait


def paste(browser, text: str) -> None:
    """Sets the text area as a paste does (send_keys cannot type characters outside the BMP, such as emoji)."""
    browser.execute_script("const area = document.getElementById('text'); area.value = arguments[0]; "
                           "area.dispatchEvent(new Event('input'));", text)


def submit_and_wait(browser, wait: WebDriverWait) -> None:
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda b: not b.find_element(By.ID, "results").get_attribute("hidden")
               or b.find_element(By.ID, "error").is_displayed())
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text


def text_of(node) -> str:
    return node.get_attribute("textContent")


def screenshot(browser, name: str) -> None:
    """The whole page, when LONGDOC_SCREENSHOTS is set."""
    if not os.environ.get("LONGDOC_SCREENSHOTS"):
        return
    width, height = browser.get_window_size()["width"], browser.get_window_size()["height"]
    browser.execute_script("window.scrollTo(0, 0)")
    for _ in range(2):  # the document view is 65% of the window high: the page grows with the window
        browser.set_window_size(width, browser.execute_script("return document.documentElement.scrollHeight") + 140)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    png = browser.get_screenshot_as_png()
    try:  # 256 colours: a third of the size, no visible difference for a page of text
        from PIL import Image

        Image.open(io.BytesIO(png)).quantize(256).save(SCREENSHOTS / name, optimize=True)
    except ImportError:
        (SCREENSHOTS / name).write_bytes(png)
    browser.set_window_size(width, height)


def visible_within(browser, node, container) -> bool:
    return browser.execute_script(
        "const [n, c] = [arguments[0].getBoundingClientRect(), arguments[1].getBoundingClientRect()];"
        "return n.top >= c.top && n.bottom <= c.bottom;", node, container)


def test_the_labels_and_the_evidence_shown_are_the_apis(browser, server):
    text = long_document()
    wait = open_page(browser, server)
    assert [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "model")).options] == [
        "tickets", "reader", "summarizer", "sentences"]
    Select(browser.find_element(By.ID, "model")).select_by_value("tickets")
    assert browser.find_element(By.ID, "explain").is_selected()  # explanations are on by default
    assert "billing, outage" in browser.find_element(By.ID, "model-info").text
    paste(browser, text)
    submit_and_wait(browser, wait)

    expected = api(server, "/v1/models/tickets/classify",
                   {"text": text, "explain": True, "top_segments": 3, "top_sentences": 3}).json()
    rows = browser.find_elements(By.CSS_SELECTOR, "#labels li")
    shown = {row.get_attribute("data-label"): float(row.get_attribute("data-score")) for row in rows}
    assert shown == pytest.approx(expected["scores"])
    predicted = [row.get_attribute("data-label") for row in rows if row.get_attribute("data-predicted") == "true"]
    assert predicted == expected["labels"]

    label = expected["labels"][0]
    evidence = {(s["start"], s["end"]): s for segment in expected["explanation"][label]["segments"]
                for s in segment["sentences"]}
    marks = browser.find_elements(By.CSS_SELECTOR, "#evidence mark")
    spans = [(int(m.get_attribute("data-start")), int(m.get_attribute("data-end"))) for m in marks]
    assert sorted(spans) == sorted(evidence) and len(spans) >= 3
    for mark, (start, end) in zip(marks, spans):
        assert text_of(mark) == text[start:end] == evidence[start, end]["text"]  # Python offsets: code points
        assert mark.get_attribute("data-label") == label
        assert float(mark.get_attribute("data-score")) == pytest.approx(evidence[start, end]["score"])
    view = browser.find_element(By.CSS_SELECTOR, "#evidence .document")
    assert text_of(view) == text  # the whole document, nothing lost or doubled around the marks
    strongest = browser.find_element(By.CSS_SELECTOR, "#evidence mark.strongest")
    assert float(strongest.get_attribute("data-score")) == pytest.approx(max(s["score"] for s in evidence.values()))
    assert browser.execute_script("return arguments[0].scrollHeight > arguments[0].clientHeight", view)  # it scrolls
    assert visible_within(browser, strongest, view)
    screenshot(browser, "web-page.png")

    # the list beside the document scrolls to a sentence when clicked
    weakest = browser.find_elements(By.CSS_SELECTOR, "#evidence .evidence-list button")[-1]
    weakest.click()
    focused = browser.switch_to.active_element
    assert focused.tag_name == "mark" and text_of(focused) == text_of(weakest)
    assert visible_within(browser, focused, view)


def test_the_answer_is_highlighted_at_the_apis_offsets(browser, server, tmp_path):
    text = long_document(markup=True)
    page = tmp_path / "notes.txt"
    page.write_text(text, encoding="utf-8")
    wait = open_page(browser, server)
    Select(browser.find_element(By.ID, "model")).select_by_value("reader")
    assert not browser.find_element(By.ID, "question").get_attribute("hidden")
    assert not browser.find_element(By.ID, "explain").is_displayed()
    browser.find_element(By.ID, "file").send_keys(str(page))  # opened with FileReader, no upload
    wait.until(lambda b: b.find_element(By.ID, "text").get_attribute("value"))
    assert browser.find_element(By.ID, "text").get_attribute("value") == text
    assert "notes.txt" in browser.find_element(By.ID, "text-info").text
    question = "What crashed at midnight?"
    browser.find_element(By.ID, "question").send_keys(question)
    submit_and_wait(browser, wait)

    expected = api(server, "/v1/models/reader/answer", {"text": text, "question": question, "top_k": 3}).json()
    assert expected["start"] is not None  # a random reader still answers: the span it scores best
    mark = browser.find_element(By.CSS_SELECTOR, "#result-body mark.answer")
    assert text_of(mark) == expected["answer"] == text[expected["start"]:expected["end"]]
    assert int(mark.get_attribute("data-start")) == expected["start"]
    assert text_of(browser.find_element(By.CSS_SELECTOR, "#answer .answer-text")) == expected["answer"]
    view = browser.find_element(By.CSS_SELECTOR, "#result-body .document")
    assert visible_within(browser, mark, view)
    assert text_of(view) == text  # the markup in the document is text, not elements
    assert browser.execute_script("return document.querySelectorAll('#result-body img, #result-body b').length") == 0
    assert browser.execute_script("return window.injected") is None
    choices = browser.find_elements(By.CSS_SELECTOR, "#result-body ol.answers input[type=radio]")
    assert len(choices) == len(expected["answers"]) == 3
    screenshot(browser, "web-page-qa.png")
    second = expected["answers"][1]
    browser.find_element(By.CSS_SELECTOR, "label[for=answer-1]").click()
    mark = browser.find_element(By.CSS_SELECTOR, "#result-body mark.answer")
    assert text_of(mark) == second["answer"] == text[second["start"]:second["end"]]


def test_the_summary_and_the_sentence_labels_are_the_apis(browser, server):
    text = long_document()
    wait = open_page(browser, server)
    Select(browser.find_element(By.ID, "model")).select_by_value("summarizer")
    paste(browser, text)
    browser.find_element(By.ID, "num-beams").send_keys("2")
    browser.find_element(By.ID, "truncate").click()  # the document is longer than the summarizer reads
    submit_and_wait(browser, wait)
    expected = api(server, "/v1/models/summarizer/summarize", {"text": text, "num_beams": 2, "truncate": True}).json()
    assert expected["truncated"] is True
    assert text_of(browser.find_element(By.ID, "summary")) == expected["summary"]
    assert "summarizes its beginning" in browser.find_element(By.ID, "result-body").text

    sentences = [FILLER[0], NEEDLES["billing"][0], FILLER[3], NEEDLES["outage"][1]]
    Select(browser.find_element(By.ID, "model")).select_by_value("sentences")
    assert not browser.find_element(By.ID, "explain").is_displayed()  # a label per sentence, nothing to explain
    paste(browser, " ".join(sentences))
    submit_and_wait(browser, wait)
    expected = api(server, "/v1/models/sentences/classify", {"text": " ".join(sentences)}).json()
    assert expected["sentences"] == sentences
    rows = browser.find_elements(By.CSS_SELECTOR, "#sentence-labels li")
    assert [text_of(row.find_element(By.CSS_SELECTOR, ".sentence")) for row in rows] == sentences
    assert [row.get_attribute("data-labels") for row in rows] == expected["labels"]


def test_the_servers_error_message_is_shown(browser, server):
    wait = open_page(browser, server)
    Select(browser.find_element(By.ID, "model")).select_by_value("tickets")
    too_long = " ".join(FILLER * 40)  # more tokens than the classifier's 128 segments of 30
    paste(browser, too_long)
    error = browser.find_element(By.ID, "error")
    segments = browser.find_element(By.ID, "top-segments")
    segments.clear()
    segments.send_keys("0")
    browser.find_element(By.ID, "submit").click()  # refused before anything is sent
    assert error.text == "Error: Segments per label must be a whole number at least 1 and at most 20; got 0."
    segments.clear()
    segments.send_keys("3")
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda b: "413" in error.text)
    answer = api(server, "/v1/models/tickets/classify", {"text": too_long, "explain": True, "top_segments": 3,
                                                           "top_sentences": 3})
    assert answer.status_code == 413
    assert answer.json()["error"]["message"] in error.text and "413" in error.text
    assert browser.find_element(By.ID, "results").get_attribute("hidden")
    # on request the beginning is classified, and the page says so
    browser.find_element(By.ID, "explain").click()  # off: labels only
    browser.find_element(By.ID, "classify-beginning").click()
    submit_and_wait(browser, wait)
    cut = api(server, "/v1/models/tickets/classify", {"text": too_long, "explain": False, "truncate": True}).json()
    assert cut["truncated"] is True
    rows = browser.find_elements(By.CSS_SELECTOR, "#labels li")
    assert {r.get_attribute("data-label"): float(r.get_attribute("data-score")) for r in rows} == pytest.approx(
        cut["scores"])
    assert "beginning" in browser.find_element(By.ID, "truncated-note").text
    # a question is asked before anything is sent
    Select(browser.find_element(By.ID, "model")).select_by_value("reader")
    browser.find_element(By.ID, "submit").click()
    assert "Ask a question" in error.text


def test_without_the_key_the_page_asks_for_it(browser, server):
    wait = open_page(browser, server, key=None)
    error = browser.find_element(By.ID, "error")
    wait.until(lambda b: error.is_displayed())
    assert "401" in error.text and "API key" in error.text
    assert not browser.find_element(By.ID, "model").is_enabled()
    key = browser.find_element(By.ID, "api-key")
    assert key.is_displayed()  # its box opened
    key.send_keys(API_KEY + "\t")  # change: kept for the tab, and the models listed again
    wait.until(lambda b: b.find_element(By.ID, "model").is_enabled())
    assert not error.is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('longdoc.apiKey')") == API_KEY
