"""longdoc's one sentence splitter: character spans of the sentences of a text.

HAT's greedy segmentation packs these sentences into segments, the summarization lead baseline and
ROUGE-Lsum read them one per line, and classifier explanations score them. Rule-based, so that
nothing has to be downloaded (nltk's punkt model would be):

* a sentence ends at . ! ? (closing quotes or brackets may follow) when whitespace and then
  something that starts a sentence follow (an uppercase letter, a digit, an opening quote or
  bracket, a CJK character), unless the word is an abbreviation: one of `ABBREVIATIONS`
  ("Dr.", "Fig. 3", "cf."), dotted initials ("e.g.", "i.e.", "U.S.") or a single letter ("J. Smith");
* at the CJK enders 。！？；． with no space needed (text without spaces splits too);
* at blank lines (paragraph breaks), or with `line_breaks=True` at every line break (the
  summarization recipe, where rouge-score reads one sentence per line).
"""

from __future__ import annotations

import bisect
import re

# words whose trailing period does not end a sentence (lower case, period dropped)
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt rev gen col lt sgt capt vs cf ca approx viz al esp incl resp fig figs eq eqs "
    "no nos vol vols pp ch chap sec sect art ref refs ed eds dept univ inc ltd co corp est "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)

_LATIN_END = re.compile(r"[.!?]+[\"'”’»)\]]*$")
_CJK_END = re.compile(r"[。！？；．]+[」』”’）》〕】\"')\]]*")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_LINE_BREAK = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")  # where str.splitlines breaks
_WORD = re.compile(r"\S+")
_OPENERS = "\"'“‘«([{「『（《【"
_INITIALS = re.compile(r"^(?:[A-Za-z]\.){2,}$|^[A-Za-z]\.$")  # e.g. i.e. U.S. a.m., and "J." in "J. Smith"


def split_sentences(text: str, line_breaks: bool = False) -> list[tuple[int, int]]:
    """[start, end) character spans of the sentences of `text`, in order, surrounding whitespace
    excluded (so `text[start:end]` is the sentence as written). `line_breaks`: every line break
    ends a sentence, not only blank lines."""
    ends = set(_latin_ends(text))
    ends.update(match.end() for match in _CJK_END.finditer(text))
    ends.update(match.start() for match in (_LINE_BREAK if line_breaks else _BLANK_LINE).finditer(text))
    ends.add(len(text))
    spans, start = [], 0
    for end in sorted(ends):
        span = _strip(text, start, end)
        if span is not None:
            spans.append(span)
        start = end
    return spans


def sentence_token_ranges(offsets: list[tuple[int, int]], sentences: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """[first, stop) token range of each sentence, from the tokens' character `offsets`: a token
    belongs to the first sentence that ends after it starts (a token that starts in the whitespace
    between sentences, e.g. byte-level BPE's "Ġword", belongs to the next one). The ranges are
    contiguous and cover all tokens, so they cut the token list in order."""
    ends = [end for _, end in sentences]
    owner, owners = 0, []
    for start, _ in offsets:
        owner = max(owner, min(bisect.bisect_right(ends, start), len(sentences) - 1))
        owners.append(owner)
    ranges, first = [], 0
    for index in range(len(sentences)):
        stop = bisect.bisect_right(owners, index, lo=first)
        ranges.append((first, stop))
        first = stop
    return ranges


def _latin_ends(text: str):
    """Ends of Latin sentences: words (whitespace-separated) that end in . ! ? before a sentence start."""
    words = list(_WORD.finditer(text))
    for word, following in zip(words, words[1:]):
        token = word.group()
        ending = _LATIN_END.search(token)
        if ending is None or not _starts_sentence(following.group()[0]):
            continue
        if ending.group() == "." and _is_abbreviation(token):
            continue
        yield word.end()


def _starts_sentence(char: str) -> bool:
    return char.isupper() or char.isdigit() or char in _OPENERS or _is_cjk(char)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return 0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x9FFF or 0xAC00 <= code <= 0xD7AF


def _is_abbreviation(word: str) -> bool:
    core = word.lstrip(_OPENERS)
    return bool(_INITIALS.match(core)) or core[:-1].lower() in ABBREVIATIONS


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    """[start, end) without its leading/trailing whitespace; None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None
