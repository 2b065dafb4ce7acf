// The longdoc web page: lists the served models (GET v1/models), sends a document to one
// (POST v1/models/{name}/{action}) and shows its prediction. Plain browser JavaScript, no build step.
// Every text from the user or the server reaches the page as a text node (textContent, append of a
// string), never as HTML.
"use strict";

(() => {
  const KEY_STORAGE = "longdoc.apiKey";  // sessionStorage: this tab only
  const MODEL_STORAGE = "longdoc.model";
  const MAX_FILE_BYTES = 50 * 1024 * 1024;
  const TOP_LABELS = 10;  // labels listed before the rest fold away
  const VERB = { classify: "Classify", answer: "Find the answer", summarize: "Summarize" };
  const BUSY = { classify: "Classifying…", answer: "Looking for the answer…", summarize: "Summarizing…" };

  const byId = (id) => document.getElementById(id);
  const ui = {
    form: byId("ask"), model: byId("model"), modelInfo: byId("model-info"), keyBox: byId("api-key-box"),
    key: byId("api-key"), text: byId("text"), textInfo: byId("text-info"), file: byId("file"),
    question: byId("question"), topK: byId("top-k"), explain: byId("explain"),
    topSegments: byId("top-segments"), topSentences: byId("top-sentences"),
    numBeams: byId("num-beams"), maxLength: byId("max-length"), minLength: byId("min-length"),
    truncate: byId("truncate"), classifyBeginning: byId("classify-beginning"),
    submit: byId("submit"), status: byId("status"), error: byId("error"),
    results: byId("results"), resultsTitle: byId("results-title"), resultBody: byId("result-body"),
  };
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
  let models = [];
  let busy = false;

  // -- small helpers ---------------------------------------------------------------------------

  /** An element with properties (className, text, dataset, on<event>, attributes) and children
   *  (nodes or strings; a string becomes a text node). */
  function element(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "className") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of [].concat(children)) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const percent = (p) => `${(100 * p).toFixed(p >= 0.995 || p < 0.1 ? 1 : 0)}%`;
  const signed = (x) => `${x >= 0 ? "+" : "−"}${Math.abs(x).toFixed(2)}`;
  const plural = (n, word) => `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;
  const excerpt = (text, most = 200) => (text.length > most ? `${text.slice(0, most - 1).trimEnd()}…` : text);

  /** Python counts characters in code points, JavaScript strings in UTF-16 units: the server's offsets
   *  name code points, so a character outside the BMP (an emoji) before a span shifts it by one here. */
  function codePointIndex(text) {
    if (!/[\uD800-\uDFFF]/.test(text)) return (offset) => offset;
    const units = [0];
    for (const character of text) units.push(units[units.length - 1] + character.length);
    return (offset) => units[Math.min(Math.max(offset, 0), units.length - 1)];
  }

  function smoothly() {
    return reducedMotion.matches ? "auto" : "smooth";
  }

  /** Scrolls `container` (not the whole page) so that `target` sits in its upper third. */
  function scrollWithin(container, target, behavior = "auto") {
    const top = target.getBoundingClientRect().top - container.getBoundingClientRect().top + container.scrollTop;
    container.scrollTo({ top: Math.max(0, top - container.clientHeight / 3), behavior });
  }

  // -- the API ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status = 0, type = "") {
      super(message);
      this.status = status;
      this.type = type;
    }
  }

  async function callApi(path, body) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method: body === undefined ? "GET" : "POST", headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(`The server did not answer (${error.message}): is longdoc serve still running?`);
    }
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(errorMessage(payload, response), response.status, payload?.error?.type || "");
    }
    if (payload === null) throw new ApiError(`The server answered ${response.status} without JSON.`, response.status);
    return payload;
  }

  function errorMessage(payload, response) {
    if (payload?.error?.message) return payload.error.message;
    const detail = payload?.detail;  // FastAPI's own shape, should a route answer with it
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    return `The server answered ${response.status} ${response.statusText}`.trim() + ".";
  }

  function showError(error) {
    const where = error.status ? `${error.status}${error.type ? ` ${error.type}` : ""}: ` : "";
    ui.error.replaceChildren(element("strong", { text: "Error: " }), `${where}${error.message}`);
    ui.error.hidden = false;
    if (error.status === 401 || error.status === 403) {
      ui.keyBox.open = true;
      ui.key.focus();
    }
  }

  function clearError() {
    ui.error.hidden = true;
    ui.error.replaceChildren();
  }

  // -- models ----------------------------------------------------------------------------------

  async function loadModels() {
    ui.model.disabled = true;
    ui.submit.disabled = true;
    ui.model.replaceChildren(element("option", { value: "", text: "Loading models…" }));
    try {
      models = (await callApi("v1/models")).models || [];
    } catch (error) {
      models = [];
      ui.model.replaceChildren(element("option", { value: "", text: "No models (see the error below)" }));
      showError(error);
      return;
    }
    clearError();
    if (!models.length) {
      ui.model.replaceChildren(element("option", { value: "", text: "This server serves no model" }));
      return;
    }
    ui.model.replaceChildren(...models.map((m) =>
      element("option", { value: m.name, text: `${m.name} (${m.task})` })));
    const previous = sessionStorage.getItem(MODEL_STORAGE);
    if (models.some((m) => m.name === previous)) ui.model.value = previous;
    ui.model.disabled = false;
    modelChanged();
  }

  const currentModel = () => models.find((m) => m.name === ui.model.value) || null;
  // Only document classifiers explain their labels; a sentence classifier labels each sentence instead.
  const explains = (model) => model.action === "classify" && model.task === "classification";

  function modelChanged() {
    const model = currentModel();
    if (!model) return;
    sessionStorage.setItem(MODEL_STORAGE, model.name);
    const labels = model.labels || [];
    const facts = [model.task, model.family, model.runtime].filter(Boolean);
    if (labels.length) {
      const shown = labels.slice(0, 8).join(", ");
      facts.push(`labels: ${shown}${labels.length > 8 ? ` and ${labels.length - 8} more` : ""}`);
    }
    if (model.reads) facts.push(`reads ${model.reads}`);
    ui.modelInfo.textContent = facts.join(" · ");
    for (const fieldset of ui.form.querySelectorAll("fieldset[data-for]")) {
      const wanted = fieldset.dataset.for;
      fieldset.hidden = wanted === "explain" ? !explains(model) : wanted === "cut" ? !cuts(model)
        : wanted !== model.action;
    }
    ui.question.required = model.action === "answer";
    ui.submit.textContent = VERB[model.action] || "Run";
    ui.submit.disabled = busy;
  }

  function explainChanged() {
    ui.topSegments.disabled = ui.topSentences.disabled = !ui.explain.checked;
  }

  // -- the document ----------------------------------------------------------------------------

  function describeText() {
    const text = ui.text.value;
    const words = (text.match(/\S+/g) || []).length;
    ui.textInfo.textContent = text ? `${plural(words, "word")}, ${plural([...text].length, "character")}` : "";
  }

  function openFile(file) {
    if (!file) return;
    if (file.size > MAX_FILE_BYTES) {
      showError(new Error(`${file.name} is ${(file.size / 1048576).toFixed(0)} MB: open a text file under ` +
                          `${MAX_FILE_BYTES / 1048576} MB.`));
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      const text = String(reader.result);
      if (text.includes("\u0000")) {
        showError(new Error(`${file.name} is not plain text (it holds NUL bytes): save it as a .txt file first.`));
        return;
      }
      clearError();
      ui.text.value = text;
      describeText();
      ui.textInfo.textContent = `${file.name}: ${ui.textInfo.textContent}`;
    };
    reader.onerror = () => {
      showError(new Error(`Could not read ${file.name}: ${reader.error?.message || "unknown error"}.`));
    };
    reader.readAsText(file);  // UTF-8
  }

  // -- the request -----------------------------------------------------------------------------

  /** The integer in a number field, undefined when it is empty; an Error naming the field when it is not
   *  a whole number within the field's bounds. */
  function whole(input) {
    const name = input.labels[0]?.textContent || input.id;
    const bounds = [input.min && ` at least ${input.min}`, input.max && ` at most ${input.max}`].filter(Boolean);
    const wanted = `${name} must be a whole number${bounds.join(" and")}`;
    if (input.validity.badInput) throw new Error(`${wanted}.`);  // the browser keeps no value for "abc"
    if (input.value.trim() === "") return undefined;
    const value = Number(input.value);
    if (!Number.isInteger(value) || !input.checkValidity()) throw new Error(`${wanted}; got ${input.value}.`);
    return value;
  }

  function requestBody(model, text) {
    if (model.action === "answer") {
      const question = ui.question.value.trim();
      if (!question) {
        ui.question.focus();
        throw new Error("Ask a question: the model looks for its answer in the document.");
      }
      return { text, question, top_k: whole(ui.topK) ?? 1 };
    }
    if (model.action === "summarize") {
      const body = { text, truncate: ui.truncate.checked };
      const options = { num_beams: ui.numBeams, max_length: ui.maxLength, min_length: ui.minLength };
      for (const [field, input] of Object.entries(options)) {
        const value = whole(input);
        if (value !== undefined) body[field] = value;
      }
      return body;
    }
    const cut = cuts(model) && ui.classifyBeginning.checked ? { truncate: true } : {};
    if (!explains(model)) return { text, ...cut };
    if (!ui.explain.checked) return { text, explain: false, ...cut };
    return { text, explain: true, top_segments: whole(ui.topSegments) ?? 3,
             top_sentences: whole(ui.topSentences) ?? 3, ...cut };
  }

  // a document classifier with a length limit may read a longer document's beginning on request
  function cuts(model) {
    return model.task === "classification" && model.max_document_tokens != null;
  }

  function setBusy(on, message = "") {
    busy = on;
    ui.submit.disabled = on || !currentModel();
    ui.form.setAttribute("aria-busy", String(on));
    clearInterval(setBusy.timer);
    ui.status.textContent = message;
    if (on) {
      const started = performance.now();
      setBusy.timer = setInterval(() => {
        ui.status.textContent = `${message} ${Math.round((performance.now() - started) / 1000)} s`;
      }, 1000);
    }
  }

  async function submit(event) {
    event.preventDefault();
    const model = currentModel();
    if (!model || busy) return;
    const text = ui.text.value;
    let body;
    try {
      if (!text.trim()) {
        ui.text.focus();
        throw new Error("The document is empty: paste a text or open a file.");
      }
      body = requestBody(model, text);
    } catch (error) {
      showError(error);
      return;
    }
    clearError();
    setBusy(true, BUSY[model.action] || "Working…");
    const started = performance.now();
    try {
      const path = `v1/models/${encodeURIComponent(model.name)}/${encodeURIComponent(model.action)}`;
      const result = await callApi(path, body);
      const seconds = (performance.now() - started) / 1000;
      setBusy(false, `Done in ${seconds.toFixed(1)} s.`);
      showResult(model, text, body, result);
    } catch (error) {
      setBusy(false);
      showError(error);
    }
  }

  // -- results ---------------------------------------------------------------------------------

  function showResult(model, text, body, result) {
    ui.resultsTitle.textContent = `Result of ${model.name}`;
    ui.resultBody.replaceChildren();
    ui.results.hidden = false;
    ui.results.dataset.action = model.action;
    if (model.action === "answer") showAnswer(text, body, result);
    else if (model.action === "summarize") showSummary(result);
    else if (Array.isArray(result.scores)) showSentences(result);  // a sentence classifier: scores per sentence
    else showClassification(text, body, result);
    ui.resultsTitle.focus({ preventScroll: true });
    ui.results.scrollIntoView({ block: "start", behavior: smoothly() });
  }

  /** A scrolling view of the document with `spans` ({start, end} in code points, best first; a span that
   *  overlaps a better one is left out) as <mark> elements made by `makeMark(span)`. */
  function documentView(text, spans, makeMark) {
    const toUnits = codePointIndex(text);
    const kept = [];
    for (const span of spans) {
      const start = toUnits(span.start), end = toUnits(span.end);
      if (!(end > start) || kept.some((k) => start < k.end && k.start < end)) continue;
      kept.push({ start, end, span });
    }
    kept.sort((a, b) => a.start - b.start);
    const view = element("div", { className: "document", tabindex: "0", role: "region",
                                  "aria-label": "The document" });
    const marks = [];
    let at = 0;
    for (const { start, end, span } of kept) {
      if (start > at) view.append(text.slice(at, start));
      const mark = makeMark(span);
      mark.tabIndex = -1;
      mark.append(text.slice(start, end));
      view.append(mark);
      marks.push(mark);
      at = end;
    }
    if (at < text.length) view.append(text.slice(at));
    return { view, marks };
  }

  function flash(mark) {
    mark.classList.remove("flash");
    void mark.offsetWidth;  // restart the animation
    mark.classList.add("flash");
  }

  function goTo(view, mark) {
    scrollWithin(view, mark, smoothly());
    mark.focus({ preventScroll: true });
    flash(mark);
  }

  // classification -------------------------------------------------------------------------

  function labelRow(label, probability, predicted) {
    const fill = element("span", { className: "fill" });
    fill.style.width = `${Math.max(0, Math.min(1, probability)) * 100}%`;
    return element("li", {
      className: predicted ? "label predicted" : "label",
      dataset: { label, score: String(probability), predicted: String(predicted) },
    }, [
      element("span", { className: "name", text: label }),
      element("span", { className: "bar", "aria-hidden": "true" }, fill),
      element("span", { className: "score", text: percent(probability) }),
      predicted ? element("span", { className: "badge", text: "predicted" }) : null,
    ]);
  }

  function labelList(scores, predicted) {
    const ranked = Object.entries(scores).sort((a, b) => b[1] - a[1]);
    const first = ranked.filter(([label], i) => i < TOP_LABELS || predicted.has(label));
    const rest = ranked.filter((pair) => !first.includes(pair));
    const list = element("ol", { id: "labels", className: "labels" },
                         first.map(([l, p]) => labelRow(l, p, predicted.has(l))));
    const parts = [element("h3", { text: "Labels" }), list];
    if (rest.length) {
      parts.push(element("details", { className: "more-labels" }, [
        element("summary", { text: `${plural(rest.length, "more label")}` }),
        element("ol", { className: "labels" }, rest.map(([l, p]) => labelRow(l, p, false))),
      ]));
    }
    if (!predicted.size) {
      parts.push(element("p", { className: "note", text: "No label passed the model's threshold." }));
    }
    return parts;
  }

  /** The evidence sentences of a label's explanation, each once, best first. */
  function evidenceOf(explanation) {
    const seen = new Map();
    for (const segment of explanation.segments || []) {
      for (const sentence of segment.sentences || []) {
        const key = `${sentence.start}:${sentence.end}`;
        if (!seen.has(key)) seen.set(key, { ...sentence, segment: segment.segment, weight: segment.weight });
      }
    }
    return [...seen.values()].sort((a, b) => b.score - a.score);
  }

  function evidenceView(text, label, explanation) {
    const sentences = evidenceOf(explanation);
    const strongest = Math.max(1e-9, ...sentences.map((s) => s.score));
    const { view, marks } = documentView(text, sentences, (s) => {
      const mark = element("mark", {
        className: s.score > 0 ? "evidence" : "evidence against",
        dataset: { label, score: String(s.score), start: String(s.start), end: String(s.end),
                   segment: String(s.segment) },
        title: `${label}: without this sentence its log-odds ${s.score >= 0 ? "drop" : "rise"} by ` +
               `${Math.abs(s.score).toFixed(2)} (segment ${s.segment})`,
      });
      mark.style.setProperty("--strength", String(s.score > 0 ? 0.3 + 0.7 * (s.score / strongest) : 0.3));
      return mark;
    });
    const markOf = new Map(marks.map((m) => [`${m.dataset.start}:${m.dataset.end}`, m]));
    const list = element("ol", { className: "evidence-list" }, sentences.map((s) => {
      const mark = markOf.get(`${s.start}:${s.end}`);
      return element("li", {}, [
        element("button", {
          type: "button", className: "link", disabled: !mark,
          onclick: () => mark && goTo(view, mark),
        }, excerpt(s.text)),
        element("span", { className: "meta", text: ` ${signed(s.score)} · segment ${s.segment}` }),
      ]);
    }));
    const heading = element("h3", {}, ["Evidence for ", element("q", { text: label }),
      ` (${percent(explanation.probability)})`]);
    const legend = element("p", { className: "hint" }, sentences.length
      ? "Highlighted: the sentences without which the label loses most (darker: more); underlined: sentences that " +
        "speak against it. A score is the drop of the label's log-odds when the sentence is removed."
      : "The model read no sentence of this label's segments.");
    const side = element("div", { className: "side" }, [element("h4", { text: "Strongest first" }), list]);
    return { parts: [heading, legend, element("div", { className: "reading" }, [view, side])], view, marks };
  }

  function showClassification(text, body, result) {
    const predicted = new Set(result.labels || []);
    const out = ui.resultBody;
    out.append(...labelList(result.scores || {}, predicted));
    if (result.truncated) {
      out.append(element("p", { className: "note", id: "truncated-note",
        text: "The document was longer than the model reads: these labels are of its beginning." }));
    }
    const explanation = result.explanation || {};
    const explained = (result.labels || []).filter((l) => explanation[l]).concat(
      Object.keys(explanation).filter((l) => !predicted.has(l)));
    if (!body.explain) return;
    if (!explained.length) {
      out.append(element("p", { className: "note", text:
        "The model returned no explanation: only the segment families (segment, chunk-pool, truncate) explain " +
        "their labels." }));
      return;
    }
    const holder = element("div", { id: "evidence" });
    const show = (label) => {
      const { parts, view, marks } = evidenceView(text, label, explanation[label]);
      holder.replaceChildren(...parts);
      const score = (mark) => Number(mark.dataset.score);
      const strongest = marks.reduce((best, m) => (!best || score(m) > score(best) ? m : best), null);
      if (strongest) {
        strongest.classList.add("strongest");
        scrollWithin(view, strongest);
      }
    };
    if (explained.length > 1) {
      const group = element("fieldset", { className: "choose-label" },
                            element("legend", { text: "Show the evidence for" }));
      explained.forEach((label, i) => {
        const id = `evidence-label-${i}`;
        group.append(element("span", { className: "choice" }, [
          element("input", { type: "radio", name: "evidence-label", id, value: label, checked: i === 0,
                             onchange: () => show(label) }),
          element("label", { for: id, text: label }),
        ]));
      });
      out.append(group);
    }
    out.append(holder);
    show(explained[0]);
  }

  // question answering -----------------------------------------------------------------------

  function showAnswer(text, body, result) {
    const answers = Array.isArray(result.answers) && result.answers.length ? result.answers : [result];
    const found = (answer) => answer.start !== null && answer.start !== undefined;  // null: "no answer"
    const asked = element("p", { className: "question" }, [element("strong", { text: "Question: " }), body.question]);
    const box = element("div", { className: "answer-box", id: "answer" }, found(result)
      ? element("p", {}, [element("strong", { text: "Answer: " }),
                          element("q", { className: "answer-text", text: result.answer }),
                          ` (score ${percent(result.score)})`])
      : element("p", { text: `No answer in the document (score ${percent(result.score || 0)}).` }));
    ui.resultBody.append(asked, box);
    const first = answers.find(found);
    if (!first) return;

    const reading = element("div", { className: answers.length > 1 ? "reading" : "reading single" });
    const holder = element("div");
    reading.append(holder);
    if (answers.length > 1) {
      const list = element("ol", { className: "answers" });
      answers.forEach((answer, i) => {
        const id = `answer-${i}`;
        list.append(element("li", {}, [
          element("input", { type: "radio", name: "answer", id, checked: answer === first, disabled: !found(answer),
                             onchange: () => show(answer) }),
          element("label", { for: id }, [
            found(answer) ? element("q", { text: excerpt(answer.answer, 120) }) : "(no answer)",
            element("span", { className: "meta", text: ` ${percent(answer.score)}` })]),
        ]));
      });
      reading.append(element("div", { className: "side" }, [element("h4", { text: "Answers, best first" }), list]));
    }
    ui.resultBody.append(reading);

    function show(answer) {
      const { view, marks } = documentView(text, [answer], (a) => element("mark", {
        className: "answer strongest",
        dataset: { start: String(a.start), end: String(a.end), score: String(a.score) },
        title: `answer, score ${percent(a.score)}`,
      }));
      holder.replaceChildren(view);
      if (marks[0]) scrollWithin(view, marks[0]);
    }
    show(first);
  }

  // summarization and sentence labels --------------------------------------------------------

  function showSummary(result) {
    ui.resultBody.append(element("h3", { text: "Summary" }),
                         element("p", { className: "summary", id: "summary", text: result.summary ?? "" }));
    if (result.truncated) {
      ui.resultBody.append(element("p", { className: "note",
        text: "The document was longer than the model reads: this summarizes its beginning." }));
    }
  }

  function showSentences(result) {
    const sentences = result.sentences || [];
    const list = element("ol", { className: "sentence-labels", id: "sentence-labels" });
    (result.labels || []).forEach((labels, i) => {
      const names = labels === null ? [] : [].concat(labels);
      const chips = names.length ? names.map((l) => element("span", { className: "chip", text: l }))
                                 : [element("span", { className: "chip unread",
                                                      text: labels === null ? "not read" : "no label" })];
      const scores = result.scores?.[i];
      const best = scores && names.length ? ` (${names.map((l) => percent(scores[l] ?? 0)).join(", ")})` : "";
      list.append(element("li", { dataset: { labels: names.join("\u001f") } }, [
        element("span", { className: "chips" }, chips),
        element("span", { className: "sentence", text: sentences[i] ?? `sentence ${i + 1}` }),
        element("span", { className: "meta", text: best }),
      ]));
    });
    ui.resultBody.append(element("h3", { text: "A label per sentence" }), list);
    if (result.sentences_not_read) {
      ui.resultBody.append(element("p", { className: "note",
        text: `${plural(result.sentences_not_read, "sentence")} beyond what the model reads were not labelled.` }));
    }
  }

  // -- wiring ----------------------------------------------------------------------------------

  ui.key.value = sessionStorage.getItem(KEY_STORAGE) || "";
  ui.key.addEventListener("change", () => {
    const key = ui.key.value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    loadModels();
  });
  ui.model.addEventListener("change", modelChanged);
  ui.explain.addEventListener("change", explainChanged);
  ui.text.addEventListener("input", describeText);
  ui.file.addEventListener("change", () => {
    openFile(ui.file.files[0]);
    ui.file.value = "";  // the same file can be opened again
  });
  ui.text.addEventListener("dragover", (event) => {
    if (event.dataTransfer?.types?.includes("Files")) event.preventDefault();
  });
  ui.text.addEventListener("drop", (event) => {
    if (!event.dataTransfer?.files?.length) return;
    event.preventDefault();
    openFile(event.dataTransfer.files[0]);
  });
  ui.form.addEventListener("submit", submit);
  explainChanged();
  describeText();
  loadModels();
})();
