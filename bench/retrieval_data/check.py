#!/usr/bin/env python3
"""Validate the retrieval benchmark data set (standard library only).

Checks:
  * questions.json is a list of >= 72 objects with unique ids and the required keys
  * kind counts: paraphrase >= 36 (and >= half), exact >= 12, keyword >= 12, no_answer >= 8
  * every answer occurs exactly once in the whole corpus (all .md files), inside the named
    document, within a single line (no heading / blank line crossing), 3-10 words
  * no_answer questions have document and answer set to null
  * paraphrase questions: reports content words (4+ letters, minus stop words, light
    stemming) shared with the answer sentence; paragraph overlaps are reported as info.

Exit status is 1 if a hard check fails. Use --strict to also fail on sentence overlaps.
"""
import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIN_COUNTS = {"paraphrase": 36, "exact": 12, "keyword": 12, "no_answer": 8}
KINDS = set(MIN_COUNTS)
STOP = set("""
about above after again against also because been before being below between both
could does doing down during each from further have having here into itself just
more most much once only other over same should some such than that their theirs them
then there these they this those through under until very what when where which while
whom will with would your yours yourself many need needs want wants make makes made
back ever every actually really does anything something someone anyone kind sort
long much take takes taking like happen happens happened going still else given
""".split())
WORD_RE = re.compile(r"[a-z]+")


def stem(word):
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def content_words(text):
    return {stem(w) for w in WORD_RE.findall(text.lower()) if len(w) >= 4 and w not in STOP}


def sentence_and_paragraph(doc_text, answer):
    pos = doc_text.find(answer)
    para_start = doc_text.rfind("\n\n", 0, pos)
    para_start = 0 if para_start < 0 else para_start + 2
    para_end = doc_text.find("\n\n", pos)
    para_end = len(doc_text) if para_end < 0 else para_end
    para = doc_text[para_start:para_end]
    rel = pos - para_start
    # sentence boundaries: ". " / "? " / "! " followed by an upper-case letter or digit
    bounds = [m.end() for m in re.finditer(r"[.?!]\s+(?=[A-Z0-9`])", para)]
    s_start = max([b for b in bounds if b <= rel], default=0)
    s_end = min([b for b in bounds if b > rel + len(answer) - 1], default=len(para))
    return para[s_start:s_end].strip(), para


def main():
    strict = "--strict" in sys.argv
    errors = []
    docs = {p.name: p.read_text(encoding="utf-8") for p in sorted(HERE.glob("*.md"))}
    print(f"Corpus: {len(docs)} documents")
    for name, text in docs.items():
        words = len(text.split())
        flag = "" if 1500 <= words <= 2500 else "  <-- outside 1500-2500 words"
        if flag:
            errors.append(f"{name}: {words} words")
        print(f"  {name:24s} {words:5d} words{flag}")

    questions = json.loads((HERE / "questions.json").read_text(encoding="utf-8"))
    if not isinstance(questions, list):
        print("FAIL: questions.json must be a list")
        return 1
    print(f"Questions: {len(questions)}")
    if len(questions) < 72:
        errors.append(f"only {len(questions)} questions (need >= 72)")

    ids = [q.get("id") for q in questions]
    for qid, n in Counter(ids).items():
        if n > 1:
            errors.append(f"duplicate id {qid!r} ({n} times)")

    kinds = Counter(q.get("kind") for q in questions)
    print("Kinds: " + ", ".join(f"{k}={kinds.get(k, 0)}" for k in sorted(KINDS)))
    for k, n in kinds.items():
        if k not in KINDS:
            errors.append(f"unknown kind {k!r}")
    for k, minimum in MIN_COUNTS.items():
        if kinds.get(k, 0) < minimum:
            errors.append(f"kind {k}: {kinds.get(k, 0)} < {minimum}")
    if kinds.get("paraphrase", 0) * 2 < len(questions):
        errors.append("paraphrase questions are less than half of all questions")

    overlaps = []
    para_overlaps = []
    for q in questions:
        qid = q.get("id")
        missing = {"id", "kind", "question", "document", "answer"} - set(q)
        if missing:
            errors.append(f"{qid}: missing keys {sorted(missing)}")
            continue
        if not q["question"] or not q["question"].strip():
            errors.append(f"{qid}: empty question")
        if q["kind"] == "no_answer":
            if q["document"] is not None or q["answer"] is not None:
                errors.append(f"{qid}: no_answer must have null document and answer")
            continue
        doc, ans = q["document"], q["answer"]
        if doc not in docs:
            errors.append(f"{qid}: unknown document {doc!r}")
            continue
        if not isinstance(ans, str) or not ans.strip():
            errors.append(f"{qid}: empty answer")
            continue
        n_words = len(ans.split())
        if not 3 <= n_words <= 10:
            errors.append(f"{qid}: answer has {n_words} words (need 3-10): {ans!r}")
        if "\n" in ans:
            errors.append(f"{qid}: answer spans lines: {ans!r}")
        total = sum(text.count(ans) for text in docs.values())
        in_doc = docs[doc].count(ans)
        if in_doc != 1 or total != 1:
            where = [n for n, t in docs.items() if ans in t]
            errors.append(f"{qid}: answer {ans!r} found {in_doc}x in {doc}, {total}x in corpus {where}")
            continue
        line = next(l for l in docs[doc].splitlines() if ans in l)
        if line.lstrip().startswith("#"):
            errors.append(f"{qid}: answer is inside a heading: {ans!r}")
        if q["kind"] == "paraphrase":
            sentence, para = sentence_and_paragraph(docs[doc], ans)
            qwords = content_words(q["question"])
            shared = sorted(qwords & content_words(sentence))
            if shared:
                overlaps.append((qid, shared, q["question"], sentence))
            p_shared = sorted((qwords & content_words(para)) - set(shared))
            if p_shared:
                para_overlaps.append((qid, p_shared))

    print(f"Paraphrase questions sharing content words with the answer sentence: {len(overlaps)}")
    for qid, shared, question, sentence in overlaps:
        print(f"  {qid}: {shared}\n      Q: {question}\n      S: {sentence}")
    print(f"Paraphrase questions sharing extra words with the answer paragraph (info): {len(para_overlaps)}")
    for qid, shared in para_overlaps:
        print(f"  {qid}: {shared}")

    if strict and overlaps:
        errors.append(f"{len(overlaps)} paraphrase questions overlap their answer sentence")
    if errors:
        print(f"FAIL: {len(errors)} problem(s)")
        for e in errors:
            print("  - " + e)
        return 1
    print("OK: all hard checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
