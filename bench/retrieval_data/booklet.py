"""A generated health-plan "Evidence of Coverage" booklet (100+ pages) and its questions.

    from retrieval_data.booklet import build
    booklet = build(Path("/tmp/eoc.pdf"))   # a few seconds, offline, the same bytes every time

Made to resemble the member booklets users ingest: numbered chapters and sections, a
running header and footer, benefit tables whose amounts (copays, coinsurance, limits)
appear only in table cells, form, plan and remark codes, phone numbers, step-by-step
procedures, coverage rules, and many sections that reuse the same words (copay, referral,
network, appeal) without answering anything, so that retrieval is not trivial.

Answer pages are not picked by hand: each question names the facts that answer it, and
the generator records the page each fact is drawn on (fpdf2's ``page_no()``; a fact is
never split across pages). The prose filler is drawn from fixed sentence pools with a
seeded random generator, so the document is deterministic.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SEED = 27
PLAN = "Cedar Valley Advantage Choice (PPO)"
YEAR = "2027"
KINDS = ("paraphrase", "exact", "number", "procedure", "coverage")
TOC_PAGES = 4  # enough for the outline (fewer fails the build)


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # one of KINDS, or "no_answer"
    question: str
    facts: tuple[str, ...] = ()  # the keys of the facts that answer it (none: no answer)


@dataclass
class Booklet:
    path: Path
    pages: int
    questions: list[Question]
    fact_pages: dict[str, set[int]]  # fact key -> pages it was drawn on
    fact_texts: dict[str, list[str]]  # fact key -> the texts that state it (each on one page)

    def answer_pages(self, q: Question) -> set[int]:
        return set().union(*(self.fact_pages[f] for f in q.facts)) if q.facts else set()


# -- the questions ---------------------------------------------------------------------

QUESTIONS = [
    # paraphrase: few words shared with the passage that answers
    Question("b01", "paraphrase", "Do I still owe the ER fee if the doctors keep me overnight?", ("er_admitted",)),
    Question("b02", "paraphrase", "Must my family doctor approve it before I book an appointment with a heart doctor?",
             ("referral_rule",)),
    Question("b03", "paraphrase", "Am I protected if I suddenly fall ill while on holiday overseas?", ("worldwide",)),
    Question("b04", "paraphrase", "I misplaced my insurance card, how do I get another one?", ("lost_card",)),
    Question("b05", "paraphrase", "Will I be warned ahead of time if my medication stops being on the approved list?",
             ("drug_removed",)),
    Question("b06", "paraphrase", "What happens if I fall behind on my monthly charges?", ("premium_late",)),
    Question("b07", "paraphrase", "Can I keep this insurance after relocating to another state?", ("moving_away",)),
    Question("b08", "paraphrase", "I don't speak English well; can someone translate for me at no cost?",
             ("interpreter",)),
    Question("b09", "paraphrase", "Can a contracted clinic send me an invoice for more than my portion?",
             ("balance_billing",)),
    # exact: a form, plan, remark code or phone number
    Question("b10", "exact", "What is Form EOC-214 used for?", ("form_214",)),
    Question("b11", "exact", "Where do I send Form EOC-309?", ("form_309",)),
    Question("b12", "exact", "What is form EOC-433?", ("form_433",)),
    Question("b13", "exact", "Who answers the phone at 1-800-555-0173?", ("phone_behavioral",)),
    Question("b14", "exact", "What kind of plan is CV-HMO-034?", ("plan_hmo034",)),
    Question("b15", "exact", "What does remark code RC-31 mean on my explanation of benefits?", ("rc_31",)),
    Question("b16", "exact", "What is Form EOC-502?", ("form_502",)),
    Question("b17", "exact", "What is 1-800-555-0155 for?", ("phone_rides",)),
    Question("b18", "exact", "When do I need Form EOC-241?", ("form_241",)),
    # number: a value that appears only in a table cell
    Question("b19", "number", "How much do I pay for an ambulance ride in network?", ("cost_ambulance",)),
    Question("b20", "number", "What is the copay to see a specialist?", ("cost_specialist",)),
    Question("b21", "number", "What do I pay for an MRI scan?", ("cost_imaging",)),
    Question("b22", "number", "What is my daily cost for a hospital stay?", ("cost_inpatient",)),
    Question("b23", "number", "What is the most I will pay out of pocket in a year in network?", ("cost_moop",)),
    Question("b24", "number", "How much is a non-preferred brand drug at a retail pharmacy for a one-month supply?",
             ("cost_tier4",)),
    Question("b25", "number", "How much does the plan give me toward glasses or contact lenses?", ("cost_eyewear",)),
    Question("b26", "number", "What is the hearing aid allowance?", ("cost_hearing_aid",)),
    Question("b27", "number", "How many days do I have to file an appeal about medical care?",
             ("deadline_appeal",)),
    # procedure: how to do something, answered by a list of steps
    Question("b28", "procedure", "How do I appeal a decision to deny coverage for a medical service?",
             ("steps_appeal",)),
    Question("b29", "procedure", "How do I file a claim to get paid back for a bill I paid myself?",
             ("steps_claim",)),
    Question("b30", "procedure", "How do I ask for an exception to cover a drug that is not on the formulary?",
             ("steps_exception",)),
    Question("b31", "procedure", "How do I file a complaint about the quality of service I received?",
             ("steps_grievance",)),
    Question("b32", "procedure", "How do I change my primary care provider?", ("steps_pcp",)),
    Question("b33", "procedure", "How do I get a fast decision on an appeal when waiting could hurt my health?",
             ("steps_fast_appeal",)),
    Question("b34", "procedure", "How do I cancel my membership in the plan?", ("steps_disenroll",)),
    Question("b35", "procedure", "How do I start getting my prescriptions by mail?", ("steps_mail_order",)),
    Question("b36", "procedure", "How do I keep seeing my doctor after they leave the network?",
             ("steps_continuity",)),
    # coverage: yes/no rules
    Question("b37", "coverage", "Is cosmetic surgery covered?", ("excl_cosmetic",)),
    Question("b38", "coverage", "Does the plan pay for a private room in the hospital?", ("excl_private_room",)),
    Question("b39", "coverage", "Is custodial care in a nursing home covered?", ("excl_custodial",)),
    Question("b40", "coverage", "Does the plan cover routine foot care like nail trimming?", ("excl_foot_care",)),
    Question("b41", "coverage", "Is LASIK eye surgery covered?", ("excl_lasik",)),
    Question("b42", "coverage", "Does the plan cover acupuncture for back pain?", ("cover_acupuncture",)),
    Question("b43", "coverage", "Is in vitro fertilization covered?", ("excl_ivf",)),
    Question("b44", "coverage", "Will the plan pay for orthopedic shoes?", ("excl_shoes",)),
    Question("b45", "coverage", "Are visits to a naturopath covered?", ("excl_naturopath",)),
    # no answer: plausible questions the booklet does not answer, and nonsense
    Question("n01", "no_answer", "Does the plan cover vaccinations for my dog?"),
    Question("n02", "no_answer", "How do I roll over my 401(k) into an IRA?"),
    Question("n03", "no_answer", "What is the maximum payout of the life insurance policy?"),
    Question("n04", "no_answer", "Does the plan reimburse tuition for nursing school?"),
    Question("n05", "no_answer", "How many vacation days do employees of the plan get each year?"),
    Question("n06", "no_answer", "What is the wifi password in the clinic waiting room?"),
    Question("n07", "no_answer", "Can I pay my premium with bitcoin?"),
    Question("n08", "no_answer", "Which airport lounges can I use with my membership?"),
    Question("n09", "no_answer", "What is the penalty for returning a rental car late?"),
    Question("n10", "no_answer", "How do I reset the password of the mobile app?"),
    Question("n11", "no_answer", "Does my policy cover flood damage to my basement?"),
    Question("n12", "no_answer", "What is the dress code for the company holiday party?"),
    Question("n13", "no_answer", "zzqx flibber"),
    Question("n14", "no_answer", "blorpt wizzle quantaframe"),
    Question("n15", "no_answer", "qwv plonk zarg"),
    Question("n16", "no_answer", "lorem ipsum dolor sit amet"),
    Question("n17", "no_answer", "Who won the football match last night?"),
    Question("n18", "no_answer", "What is the recipe for sourdough bread?"),
]


# -- the filler: sentences that reuse the booklet's vocabulary and answer nothing ------

FILLER = [
    "This section explains how {t} works under {plan} and what you need to know before you get care.",
    "If you have questions about {t}, please call Member Services; the phone numbers are printed on the back cover.",
    "In some cases, care related to {t} requires approval from the plan in advance, which is called prior "
    "authorization.",
    "Your network provider is responsible for asking us for prior authorization when it is needed for {t}.",
    "The amount you pay for {t} depends on whether the provider is in our network and on where you get the service.",
    "Chapter 4 tells you what you pay for {t}, and Chapter 5 lists the services that the plan does not cover.",
    "Your share of the cost for {t} counts toward your maximum out-of-pocket amount for the year.",
    "Services related to {t} are covered only when they are medically necessary and meet the plan's coverage rules.",
    "Keep your receipts and any notices you receive about {t}; you may need them if you ask us to reconsider "
    "a decision.",
    "When you use a provider who is not in our network for {t}, your share of the cost is usually higher.",
    "Some network providers ask you to pay your copayment for {t} at the time of the visit.",
    "If a provider asks you to pay the full cost of {t}, you can ask us to pay you back, as explained in Chapter 7.",
    "For {t}, the rules in this booklet apply together with the notices we send you during the year.",
    "We may change how we manage {t} during the year; if a change affects you, we will tell you in writing.",
    "The Provider Directory lists the network providers who offer {t} in our service area.",
    "You do not need a referral for {t} when you see a network provider in the plan's service area.",
    "Your primary care provider can help you with questions about {t} and can coordinate your care.",
    "If you disagree with a decision we make about {t}, you have the right to appeal, as described in Chapter 9.",
    "Deductibles, copayments and coinsurance for {t} are listed in the Medical Benefits Chart.",
    "Members who need help understanding {t} can ask for a care coordinator at no extra cost.",
    "We send you an Explanation of Benefits after you use {t}, showing what the plan paid and what you owe.",
    "Read the Explanation of Benefits carefully and call us if anything about {t} looks wrong.",
    "Services related to {t} that you get outside the United States are covered only in the situations described "
    "in Chapter 3.",
    "Coverage for {t} follows national and local coverage guidelines as well as the plan's own clinical policies.",
    "The plan's medical directors review requests for {t} using written criteria that are available on request.",
    "If you are not sure whether {t} is covered, you can ask us for a coverage decision before you get the service.",
    "A coverage decision about {t} is a decision we make about your benefits and coverage or about the amount we pay.",
    "Network providers have agreed to accept our payment for {t} as payment in full, except for your cost sharing.",
    "We work with network hospitals, clinics and pharmacies to make sure {t} is available when you need it.",
    "Some services related to {t} are offered through a partner company that works on behalf of the plan.",
    "If your health changes, talk to your doctor about what it means for {t}.",
    "You can find out more about {t} on the member website or by asking for a printed copy of our policies.",
    "The plan may ask your provider for medical records before approving {t}.",
    "Care you receive for {t} should be coordinated with your primary care provider whenever possible.",
    "When several services are given on the same day, the cost sharing for {t} may apply to each of them separately.",
    "Preventive services related to {t} may have no cost sharing when you see a network provider.",
    "Members with a chronic condition may qualify for extra support with {t} through our care management program.",
    "If you were already receiving {t} when you joined the plan, ask us about a transition period.",
    "Your provider must follow the plan's rules for {t}; if they do not, you are not responsible for the extra cost.",
    "Authorization for {t} is usually valid for a limited time, and your provider may need to renew it.",
    "We use the information you give us about {t} only to administer your benefits, as our privacy notice explains.",
    "The definitions in Chapter 12 explain the terms used in this section, such as copayment, coinsurance and "
    "allowed amount.",
    "You are responsible for telling us about any other insurance that may pay for {t}.",
    "If another plan pays first for {t}, we pay second, following the coordination of benefits rules.",
    "Urgently needed services related to {t} are covered even when you cannot reach a network provider.",
    "If you get {t} in an emergency, you do not need approval from the plan in advance.",
    "Our nurses can help you find a network location for {t} that is close to your home.",
    "Telehealth may be available for some services related to {t}; ask your network provider.",
    "If a network provider leaves the plan, we will help you find another provider for {t}.",
    "You may be asked to show your member ID card each time you receive {t}.",
    "Before you get {t}, check that the provider is still in our network; networks change during the year.",
    "Write down the name of the person you spoke to and the date of the call when you ask us about {t}.",
    "If English is not your first language, our interpreters can explain {t} to you.",
    "Large-print and audio versions of the rules for {t} are available from Member Services.",
    "For {t}, the plan pays its share only after any deductible that applies has been met.",
    "Some members qualify for help paying for {t} through state programs; our staff can tell you how to apply.",
    "We review our policies for {t} at least once a year to make sure they follow current medical evidence.",
    "The rules for {t} described here do not apply to services you get while you are in a hospital.",
    "If you receive {t} from a provider who has opted out of our network, you may have to pay the full cost.",
    "Where this booklet and a notice we send you disagree about {t}, the more recent notice applies.",
    "Your doctor can ask a plan medical director to discuss a decision about {t} by phone.",
    "A family member or caregiver can call us about {t} if you have given us written permission.",
    "Some limits on {t} reset at the start of each calendar year, others at the start of each benefit period.",
    "We do not require you to use a particular hospital for {t}, as long as it is in our network.",
    "When you call us about {t}, have your member ID card and any letters from us at hand.",
    "If you need {t} after business hours, call the Nurse Advice Line for guidance.",
    "Providers are paid for {t} on a fee schedule; we never reward them for denying care.",
    "To avoid delays with {t}, make sure your provider sends complete information with each request.",
    "Not every provider offers {t}; the Provider Directory notes which ones do.",
    "We may contact you after you receive {t} to ask how satisfied you were with your care.",
    "Members who live in a nursing facility receive {t} under the same rules as other members.",
    "Information about {t} is also available in our annual notice of changes.",
    "Your doctor's office may charge a separate fee for forms related to {t}, which the plan does not pay.",
    "If a service related to {t} is given by a student or resident, it is covered like any other service.",
    "You can request a written copy of the clinical criteria we used to decide about {t}.",
    "When {t} is provided in more than one setting, the cost sharing of the setting where you received it applies.",
    "You can choose any network provider for {t}; you do not have to use the one your doctor suggests.",
    "If we made a mistake processing a claim for {t}, we correct it without you having to file an appeal.",
    "Services related to {t} are not covered when they are provided mainly for your convenience.",
    "Ask your provider for a cost estimate before you get {t}, especially for planned procedures.",
]

REFERRALS = ["these services", "this benefit", "the services described here", "this kind of care",
             "the care described in this section"]

HEADINGS = [
    "What you should know about {t}", "How the plan covers {t}", "Getting help with {t}",
    "Rules that apply to {t}", "Your costs for {t}", "When {t} needs approval", "Questions about {t}",
    "More about {t}", "Where to get {t}", "Using network providers for {t}",
]


# -- the document ----------------------------------------------------------------------


def _flat(text: str) -> str:
    return " ".join(text.split())


class _Pdf:
    """fpdf2 with the booklet's styles; records where each fact lands."""

    LINE = 5.6  # body line height (mm)

    def __init__(self) -> None:
        from fpdf import FPDF

        outer = self

        class Doc(FPDF):
            def header(self) -> None:
                if self.page_no() == 1:
                    return
                self.set_y(9)
                self.set_font("Helvetica", "I", 8)
                self.set_text_color(90)
                self.cell(0, 6, f"{YEAR} Evidence of Coverage for {PLAN}")
                self.set_text_color(0)
                self.set_y(self.t_margin)

            def footer(self) -> None:
                if self.page_no() == 1:
                    return
                self.set_y(-14)
                self.set_font("Helvetica", "", 8)
                self.set_text_color(90)
                self.cell(150, 6, outer.running)
                self.cell(0, 6, str(self.page_no()), align="R")
                self.set_text_color(0)

        self.doc = Doc(format="letter")
        self.doc.set_margins(22, 22, 22)
        self.doc.set_auto_page_break(True, margin=22)
        self.doc.set_creation_date(datetime(2026, 10, 1, tzinfo=UTC))
        self.doc.set_title(f"{YEAR} Evidence of Coverage")
        self.running = ""
        self.fresh_page = False  # the page after the table of contents, not yet written on
        self.chapter_no = 0
        self.fact_pages: dict[str, set[int]] = {}
        self.fact_texts: dict[str, list[str]] = {}
        self.prose: list[str] = []  # every text written outside table cells
        self.cells: list[str] = []

    # -- recording --

    def _fact(self, key: str | None, texts: Iterable[str]) -> None:
        if key is None:
            return
        self.fact_pages.setdefault(key, set()).add(self.doc.page_no())
        self.fact_texts.setdefault(key, []).extend(_flat(t) for t in texts)

    def _room(self, height: float) -> None:
        """A new page unless ``height`` fits on this one (facts never split across pages)."""
        if self.doc.get_y() + height > self.doc.page_break_trigger:
            self.doc.add_page()

    def _height(self, width: float, text: str, line: float, markdown: bool = False) -> float:
        lines = self.doc.multi_cell(width, line, text, dry_run=True, output="LINES", markdown=markdown)
        return len(lines) * line

    # -- blocks --

    def chapter(self, title: str) -> None:
        self.chapter_no += 1
        self.running = f"Chapter {self.chapter_no}. {title}"
        self.section_no = 0
        if not self.fresh_page:
            self.doc.add_page()
        self.fresh_page = False
        self.doc.start_section(f"Chapter {self.chapter_no}. {title}")
        self.doc.set_font("Helvetica", "B", 18)
        self.doc.multi_cell(0, 9, f"CHAPTER {self.chapter_no}\n{title}", new_x="LMARGIN", new_y="NEXT")
        self.prose.append(title)
        self.doc.ln(4)

    def contents(self) -> None:
        """The table of contents, filled in with page numbers when the document is written."""
        self.running = "Table of Contents"
        self.doc.add_page()
        # fpdf2 reserves this page and the next ones, then leaves a fresh page for what follows.
        self.doc.insert_toc_placeholder(self._render_contents, pages=TOC_PAGES)
        self.fresh_page = True

    def _render_contents(self, doc: object, outline: list) -> None:
        running, self.running = self.running, "Table of Contents"
        first = self.doc.page_no()
        self.doc.set_x(self.doc.l_margin)
        self.doc.set_font("Helvetica", "B", 16)
        self.doc.cell(0, 10, "Table of Contents", new_x="LMARGIN", new_y="NEXT")
        for entry in outline:
            self.doc.set_font("Helvetica", "" if entry.level else "B", 9.5)
            indent = 6 * entry.level
            self.doc.set_x(self.doc.l_margin + indent)
            self.doc.cell(self.doc.epw - indent - 12, 5.6, entry.name)
            self.doc.cell(12, 5.6, str(entry.page_number), align="R", new_x="LMARGIN", new_y="NEXT")
            self.prose.append(entry.name)
        while self.doc.page_no() < first + TOC_PAGES - 1:  # fpdf2 wants exactly TOC_PAGES pages
            self.doc.add_page()
        self.running = running

    def section(self, title: str) -> None:
        self.section_no += 1
        self.heading(f"Section {self.chapter_no}.{self.section_no}  {title}", size=12.5, outline=True)

    def heading(self, title: str, size: float = 11, outline: bool = False) -> None:
        self._room(30)  # a heading is never the last line of a page
        if outline:
            self.doc.start_section(" ".join(title.split()), level=1)
        self.doc.ln(2)
        self.doc.set_font("Helvetica", "B", size)
        self.doc.multi_cell(0, 6.5, title, new_x="LMARGIN", new_y="NEXT")
        self.prose.append(title)
        self.doc.ln(1)

    def para(self, text: str, fact: str | None = None) -> None:
        self.doc.set_font("Helvetica", "", 11)
        if fact:
            self._room(self._height(self.doc.epw, text, self.LINE) + 1)
        self.doc.multi_cell(0, self.LINE, text, new_x="LMARGIN", new_y="NEXT")
        self._fact(fact, [text])
        self.prose.append(text)
        self.doc.ln(2.5)

    def box(self, lines: list[str], fact: str | None = None) -> None:
        """A shaded contact box (phone numbers, addresses)."""
        text = "\n".join(lines)
        self.doc.set_font("Helvetica", "", 10)
        self._room(self._height(self.doc.epw - 6, text, 5.4) + 8)
        self.doc.set_fill_color(235, 240, 245)
        self.doc.multi_cell(0, 5.4, text, fill=True, border=1, padding=3, new_x="LMARGIN", new_y="NEXT")
        self._fact(fact, lines)
        self.prose.append(text)
        self.doc.ln(3)

    def steps(self, title: str, steps: list[str], fact: str | None = None) -> None:
        """A procedure: its heading and numbered steps stay on one page."""
        self.doc.set_font("Helvetica", "", 11)
        body = [f"Step {i}. {s}" for i, s in enumerate(steps, start=1)]
        height = 14 + sum(self._height(self.doc.epw - 8, s, self.LINE) + 1.5 for s in body)
        self._room(height)
        self.heading(title)
        self.doc.set_font("Helvetica", "", 11)
        for s in body:
            self.doc.set_x(self.doc.l_margin + 6)
            self.doc.multi_cell(self.doc.epw - 8, self.LINE, s, new_x="LMARGIN", new_y="NEXT")
            self.doc.ln(1.5)
        self._fact(fact, [title, *body])
        self.prose.extend([title, *body])
        self.doc.ln(2)

    def table(self, header: list[str], rows: list[tuple[list[str], str | None]], widths: list[float],
              first_bold: bool = False) -> None:
        """Rows never split across pages; the header is repeated on each page. A row's
        fact is recorded on the page it is drawn on."""
        self.doc.ln(1)
        self._room(40)  # never a header alone at the foot of a page
        self._row(header, widths, head=True)
        for cells, fact in rows:
            self._row(cells, widths, header=header, first_bold=first_bold)
            self._fact(fact, [_flat(c.replace("**", "")) for c in cells])
            self.cells.extend(cells)
        self.doc.ln(4)

    def _row(self, cells: list[str], widths: list[float], *, head: bool = False, header: list[str] | None = None,
             first_bold: bool = False) -> None:
        pad, line = 1.6, 4.8
        scale = self.doc.epw / sum(widths)
        widths = [w * scale for w in widths]
        self.doc.set_font("Helvetica", "B" if head else "", 9.5)
        heights = [self._height(w - 2 * pad, c, line, markdown=first_bold and i == 0)
                   for i, (w, c) in enumerate(zip(widths, cells))]
        height = max(heights) + 2 * pad
        if self.doc.get_y() + height > self.doc.page_break_trigger:
            self.doc.add_page()
            if header is not None:
                self._row(header, widths, head=True)
                self.doc.set_font("Helvetica", "", 9.5)
        x, y = self.doc.l_margin, self.doc.get_y()
        self.doc.set_fill_color(210, 222, 232)
        for i, (w, c) in enumerate(zip(widths, cells)):
            self.doc.rect(x, y, w, height, style="DF" if head else "D")
            self.doc.set_xy(x + pad, y + pad)
            self.doc.multi_cell(w - 2 * pad, line, c, align="L", markdown=first_bold and i == 0 and not head)
            x += w
        self.doc.set_xy(self.doc.l_margin, y + height)

    def filler(self, rng: random.Random, topic: str, paragraphs: int, heading: bool = False) -> None:
        """Paragraphs that sound like the booklet, mention ``topic``, and answer nothing."""
        if heading:
            heading_text = rng.choice(HEADINGS).format(t=topic)
            self.heading(heading_text[0].upper() + heading_text[1:])
        for _ in range(paragraphs):
            picked = rng.sample(FILLER, rng.randint(3, 5))
            # As in real prose, the topic is named once or twice, then referred to.
            names = [topic] + [topic if rng.random() < 0.3 else rng.choice(REFERRALS) for _ in picked[1:]]
            text = " ".join(s.format(t=name, plan=PLAN) for s, name in zip(picked, names))
            self.para(text[0].upper() + text[1:])


# -- the content, chapter by chapter ---------------------------------------------------

COUNTIES = ["Alder", "Birch Falls", "Cedar", "Dunmore", "Elk River", "Fairhaven", "Granite", "Harlow", "Iron Gate",
            "Juniper", "Kestrel", "Larkspur", "Millbrook", "North Fork", "Oakridge"]


def _getting_started(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Getting started as a member")
    p.section("Introduction")
    p.para(f"You are enrolled in {PLAN}, a preferred provider organization plan offered by Cedar Valley Health "
           "Plan, Inc. This booklet, your Evidence of Coverage, explains your health care and prescription drug "
           f"coverage from January 1 through December 31, {YEAR}. It is a legal document: please keep it in a "
           "safe place.")
    p.para("The word coverage and the phrase covered services refer to the medical care, services and "
           "prescription drugs available to you as a member. We, us and our mean Cedar Valley Health Plan. "
           "You and your mean the member.")
    p.filler(rng, "your coverage", 2)
    p.section("Other plans offered by Cedar Valley Health Plan")
    p.para("This booklet describes only the plan named on its cover. Cedar Valley Health Plan offers other "
           "plans in the same service area; each has its own Evidence of Coverage. The table below lists them "
           "so that you can tell which booklet applies to you: the plan code is printed on your member ID card.")
    p.table(["Plan code", "Plan name", "Type of plan"], [
        (["CV-PPO-027", PLAN, "Preferred provider organization: covers network and out-of-network care"], None),
        (["CV-HMO-031", "Cedar Valley Core (HMO)", "Health maintenance organization: network care only, "
          "referrals required"], None),
        (["CV-HMO-034", "Cedar Valley Core Plus (HMO-POS)", "Health maintenance organization with a "
          "point-of-service option for some out-of-network care"], "plan_hmo034"),
        (["CV-SNP-040", "Cedar Valley Connect (D-SNP)", "Special needs plan for members who also have "
          "state medical assistance"], None),
        (["CV-EPO-052", "Cedar Valley Select (EPO)", "Exclusive provider organization: network care only, "
          "no referrals"], None),
    ], [22, 40, 70])
    p.section("Who is eligible to be a member")
    p.para("You are eligible for membership in our plan as long as you live in our service area, you are "
           "enrolled through your employer group or directly with us, and you pay any premium that applies. "
           "Our service area includes these counties: " + ", ".join(COUNTIES) + ".")
    p.para("If you move permanently outside the service area, you cannot stay a member of this plan; call "
           "Member Services to find out which plans are offered where you will live, and tell us your new "
           "address.", fact="moving_away")
    p.filler(rng, "eligibility and enrollment", 2, heading=True)
    p.section("Your plan membership card")
    p.para("While you are a member of our plan, you must use your member ID card whenever you get any services "
           "covered by this plan and for prescription drugs you get at network pharmacies. The card shows your "
           "name, your member number, the plan code and the phone numbers for Member Services and the pharmacy "
           "help desk.")
    p.para("If your member ID card is damaged, lost or stolen, call Member Services right away and we will "
           "mail you a replacement; you can also print a temporary card from the member website.",
           fact="lost_card")
    p.filler(rng, "your member ID card", 1)
    p.section("The Provider Directory and the Pharmacy Directory")
    p.para("The Provider Directory lists our network providers: doctors and other health care professionals, "
           "medical groups, hospitals and other health care facilities that have an agreement with us to "
           "accept our payment and any plan cost sharing as payment in full.")
    p.para("Network providers are not allowed to bill you for the difference between their charge and the "
           "amount the plan pays; you pay only your share of the cost for covered services.",
           fact="balance_billing")
    p.filler(rng, "the Provider Directory", 2)
    p.filler(rng, "network pharmacies", 2, heading=True)
    p.section("Keeping your membership record up to date")
    p.para("Your membership record has information from your enrollment form, including your address and "
           "telephone number. Network providers use it to know what services are covered. Tell Member "
           "Services about changes such as a new address, another health plan, or a stay in a nursing home.")
    p.filler(rng, "your membership record", 2)
    p.section("How other insurance works with our plan")
    p.para("When you have other insurance, such as coverage through a spouse's employer, rules decide which "
           "plan pays first. Once a year we send you the Coordination of Benefits Questionnaire, Form EOC-217; "
           "return it even when you have no other coverage, so that your claims are not delayed.")
    p.filler(rng, "coordination of benefits", 3)


def _phone_numbers(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Important phone numbers and resources")
    p.section("How to contact Member Services")
    p.para("For help with claims, billing or member card questions, please call or write to Member Services. "
           "We will be happy to help you. Calls to these numbers are free.")
    p.box(["Member Services - contact information", "Call: 1-800-555-0142, 8 a.m. to 8 p.m. local time, seven days "
           "a week", "TTY: 711", "Write: Cedar Valley Health Plan, Member Services, PO Box 4410, Cedar City",
           "Website: www.cedarvalleyhealth.example"])
    p.filler(rng, "Member Services", 2)
    p.section("How to reach the Nurse Advice Line")
    p.box(["Nurse Advice Line", "Call: 1-800-555-0199, 24 hours a day", "Registered nurses answer questions "
           "about symptoms, medicines and where to get care."])
    p.filler(rng, "the Nurse Advice Line", 2)
    p.section("Behavioral health and substance use services")
    p.box(["Behavioral Health Line", "Call: 1-800-555-0173, 24 hours a day", "Licensed counselors help you find "
           "a therapist or psychiatrist, arrange crisis support, and answer questions about mental health and "
           "substance use treatment."], fact="phone_behavioral")
    p.filler(rng, "mental health care", 2)
    p.section("The pharmacy help desk")
    p.box(["Pharmacy Help Desk", "Call: 1-800-555-0186, 24 hours a day", "For questions about your Drug List, "
           "a pharmacy claim, or your mail-order prescriptions."])
    p.filler(rng, "your prescription drug coverage", 2)
    p.section("Rides to medical appointments")
    p.box(["RideWell Transportation", "Call: 1-800-555-0155, Monday to Friday, 7 a.m. to 6 p.m.", "Schedule "
           "a ride to a plan-approved location at least two business days before your appointment."],
          fact="phone_rides")
    p.filler(rng, "transportation to appointments", 2)
    p.section("Dental, vision and hearing partners")
    p.box(["BrightSmile Dental: 1-800-555-0118", "ClearView Vision: 1-800-555-0137",
           "SoundPath Hearing: 1-800-555-0125"])
    p.filler(rng, "dental, vision and hearing benefits", 2)
    p.section("The Quality Improvement Organization and the state insurance department")
    p.para("Keystone Quality Review is the independent organization that checks the quality of care for "
           "members in our state; you can reach it at 1-800-555-0109. The State Department of Insurance answers "
           "questions about health insurance and helps with complaints: 1-800-555-0130.")
    p.filler(rng, "quality of care", 2)
    p.section("Reporting fraud")
    p.para("If you think someone has billed for services you did not receive, or used your member ID card, "
           "call our confidential fraud line at 1-800-555-0164. You do not have to give your name.")
    p.filler(rng, "suspected fraud", 1)


def _using_the_plan(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Using the plan for your medical services")
    p.section("Things to know about getting your medical care")
    p.para("This chapter explains what you need to know about using the plan to get your medical care covered. "
           "For the details on what medical care is covered and how much you pay, use the benefits chart in "
           "Chapter 4.")
    p.filler(rng, "medical care", 3)
    p.section("Your primary care provider")
    p.para("Your primary care provider, or PCP, is a network doctor who meets state requirements and is "
           "trained to give you basic medical care. Your PCP also coordinates the rest of the covered services "
           "you get as a member.")
    p.para("You need a written referral from your primary care provider before you see a specialist in our "
           "network, for example a cardiologist, a dermatologist or an orthopedic surgeon.", fact="referral_rule")
    p.filler(rng, "your primary care provider", 2)
    p.steps("How to change your primary care provider", [
        "Choose a new PCP from the Provider Directory and make sure the office is accepting new patients.",
        "Call Member Services or send the PCP Change Request, Form EOC-118, from the member website.",
        "Tell us the name of the new PCP and whether you are seeing any specialists who need new referrals.",
        "Wait for your new member ID card, which shows the name of your new PCP, before your next routine visit.",
    ], fact="steps_pcp")
    p.section("Specialists and referrals")
    p.para("A specialist is a doctor who provides health care services for a specific disease or part of the "
           "body. Some services need a referral and others need prior authorization; some need both.")
    p.filler(rng, "referrals to specialists", 3)
    p.filler(rng, "prior authorization", 3, heading=True)
    p.section("Getting care from out-of-network providers")
    p.para("As a member of a PPO plan, you can get covered care from providers who are not in our network, "
           "but your share of the cost is usually higher and the provider may ask you to pay the full amount "
           "at the time of the visit.")
    p.filler(rng, "out-of-network care", 3)
    p.section("Getting care when you have a medical emergency")
    p.para("A medical emergency is when you believe that your health is in serious danger. If you have one, "
           "call 911 or go to the nearest emergency room. You do not need approval or a referral first.")
    p.para("If you are admitted to the hospital as an inpatient within one day of the emergency room visit, "
           "you do not pay the emergency room copayment; the inpatient hospital cost sharing applies instead.",
           fact="er_admitted")
    p.filler(rng, "emergency care", 2)
    p.section("Getting care when you are outside the service area")
    p.para("Emergency and urgently needed care are covered anywhere in the world, including when you are "
           "temporarily outside the country; routine care received abroad is not covered.", fact="worldwide")
    p.para("If you plan to be away from the service area for more than a month, send us the Out-of-Area "
           "Travel Notification, Form EOC-241, before you leave, so that your care manager can arrange "
           "follow-up visits with a provider where you are staying.", fact="form_241")
    p.filler(rng, "care while traveling", 2)
    p.section("Continuity of care")
    p.para("If your doctor or hospital leaves our network while you are in the middle of a course of "
           "treatment, you may be able to keep seeing them for a transition period.")
    p.steps("How to ask to keep seeing a provider who is leaving the network", [
        "Call Member Services as soon as you receive our letter saying that your provider is leaving the network.",
        "Ask for a continuity of care review and tell us about the treatment you are receiving.",
        "Ask your provider to send us your treatment plan; we may ask them to agree to our payment rates.",
        "We tell you in writing whether you can keep seeing the provider and for how long.",
    ], fact="steps_continuity")
    p.filler(rng, "continuity of care", 2)
    p.section("Second opinions and clinical trials")
    p.filler(rng, "second opinions", 2)
    p.filler(rng, "clinical research studies", 2, heading=True)


# Medical Benefits Chart: (name, description, in network, out of network, fact)
SERVICES = [
    ("Abdominal aortic aneurysm screening", "A one-time screening ultrasound for people at risk, when you get a "
     "referral for it from your doctor.", "$0", "40% coinsurance", None),
    ("Acupuncture for chronic low back pain", "Covered for chronic low back pain lasting twelve weeks or longer "
     "that has no identifiable cause and is not related to surgery or pregnancy. Up to the visit limit shown in "
     "the next columns each year; acupuncture for any other condition is not covered.",
     "$20 copay per visit, up to 12 visits per year", "Not covered", "cover_acupuncture"),
    ("Allergy testing and treatment", "Skin and blood testing to find out what you are allergic to, and allergy "
     "shots given in a doctor's office.", "$45 copay per visit", "40% coinsurance", None),
    ("Ambulance services", "Ground, fixed-wing and rotary-wing ambulance transportation to the nearest "
     "appropriate facility, when any other means of transportation could endanger your health. Non-emergency "
     "ambulance transportation requires prior authorization.", "$275 copay per one-way trip",
     "$275 copay per one-way trip", "cost_ambulance"),
    ("Annual wellness visit", "A yearly visit to develop or update a prevention plan based on your current "
     "health and risk factors.", "$0", "30% coinsurance", None),
    ("Bone mass measurement", "Procedures to identify bone mass, find bone loss or determine bone quality, "
     "for qualified members.", "$0", "30% coinsurance", None),
    ("Cardiac rehabilitation services", "Comprehensive programs that include exercise, education and "
     "counseling, for members who meet certain conditions with a doctor's order.", "$30 copay per session",
     "40% coinsurance", None),
    ("Chiropractic services", "Manual manipulation of the spine to correct subluxation. Other chiropractic "
     "services are not covered.", "$20 copay per visit", "40% coinsurance", None),
    ("Colorectal cancer screening", "Screening colonoscopy, stool-based tests and flexible sigmoidoscopy, "
     "according to national guidelines.", "$0", "30% coinsurance", None),
    ("Dental services (medical)", "Dental services needed because of a medical condition, such as jaw "
     "reconstruction after an accident. Routine dental care is described in Chapter 6.", "20% coinsurance",
     "40% coinsurance", None),
    ("Diabetes self-management training and supplies", "Blood glucose monitors, test strips, lancets, "
     "therapeutic shoes for members with severe diabetic foot disease, and training programs.",
     "$0 for supplies; $10 copay for training", "30% coinsurance", None),
    ("Diagnostic tests and lab services", "Laboratory tests such as blood work and urinalysis, and "
     "diagnostic procedures such as electrocardiograms.", "$0 for lab services; $25 copay for diagnostic tests",
     "40% coinsurance", None),
    ("Diagnostic radiology (MRI, CT and PET scans)", "Advanced imaging ordered by your doctor. Prior "
     "authorization is required for scans done in an outpatient setting.", "$150 copay per scan",
     "40% coinsurance", "cost_imaging"),
    ("Durable medical equipment and supplies", "Wheelchairs, crutches, hospital beds, oxygen equipment, "
     "walkers and other items ordered by a provider for use in the home.", "20% coinsurance", "40% coinsurance",
     None),
    ("Emergency care", "Services furnished by a qualified provider that are needed to evaluate or stabilize "
     "an emergency medical condition, anywhere in the world.", "$110 copay per visit", "$110 copay per visit",
     None),
    ("Hearing services", "Diagnostic hearing and balance evaluations ordered by your doctor. Hearing aids "
     "are covered as a supplemental benefit (Chapter 6).", "$45 copay per exam", "40% coinsurance", None),
    ("Home health agency care", "Part-time skilled nursing, physical, occupational and speech therapy, and "
     "medical social services in your home, when you are homebound.", "$0", "30% coinsurance", None),
    ("Hospice care", "Care for members with a terminal prognosis, from a hospice program in our state.",
     "$0", "$0", None),
    ("Inpatient hospital care", "Acute care, rehabilitation and long-term care hospital stays, starting "
     "the day you are formally admitted with a doctor's order. Prior authorization is required except in an "
     "emergency.", "$350 copay per day for days 1 to 5; $0 per day for days 6 to 90",
     "40% coinsurance per stay", "cost_inpatient"),
    ("Inpatient mental health care", "Mental health care that requires a hospital stay, in a psychiatric "
     "hospital or a general hospital.", "$300 copay per day for days 1 to 5; $0 after that",
     "40% coinsurance per stay", None),
    ("Kidney disease services", "Kidney disease education, outpatient dialysis treatments and home dialysis "
     "equipment and supplies.", "20% coinsurance", "20% coinsurance", None),
    ("Medical nutrition therapy", "Counseling for members with diabetes or kidney disease, when referred by "
     "a doctor.", "$0", "30% coinsurance", None),
    ("Occupational therapy", "Therapy to help you return to usual activities such as dressing and eating "
     "after an illness or injury.", "$40 copay per visit", "40% coinsurance", None),
    ("Opioid treatment program services", "Medications for opioid use disorder, counseling and periodic "
     "assessments, from a certified program.", "$0", "30% coinsurance", None),
    ("Outpatient hospital services", "Services you get in the outpatient department of a hospital, such as "
     "observation services and outpatient surgery.", "$300 copay per visit", "40% coinsurance", None),
    ("Outpatient surgery at an ambulatory surgical center", "Surgery that does not need an overnight "
     "hospital stay, in a network ambulatory surgical center.", "$225 copay per visit", "40% coinsurance", None),
    ("Outpatient mental health care", "Individual and group therapy with a psychiatrist, psychologist, "
     "clinical social worker or other licensed professional.", "$30 copay per visit", "40% coinsurance", None),
    ("Physical therapy and speech therapy", "Therapy to restore function after an injury, an illness or "
     "surgery. Prior authorization may be required after the initial visits.", "$40 copay per visit",
     "40% coinsurance", None),
    ("Physician services: primary care", "Office visits with your primary care provider, including "
     "consultations, diagnosis and treatment.", "$0 copay per visit", "30% coinsurance", None),
    ("Physician services: specialist", "Office visits with a network specialist. A referral from your "
     "primary care provider is required.", "$45 copay per visit", "40% coinsurance", "cost_specialist"),
    ("Podiatry services", "Diagnosis and treatment of injuries and diseases of the feet, such as hammer toe "
     "or heel spurs, and foot exams for members with diabetic nerve damage.", "$45 copay per visit",
     "40% coinsurance", None),
    ("Prosthetic devices and related supplies", "Devices that replace a body part or function, such as "
     "artificial limbs, breast prostheses after a mastectomy and ostomy supplies.", "20% coinsurance",
     "40% coinsurance", None),
    ("Pulmonary rehabilitation services", "Programs for members with moderate to very severe chronic "
     "obstructive pulmonary disease, with an order from the treating doctor.", "$20 copay per session",
     "40% coinsurance", None),
    ("Skilled nursing facility care", "Up to the number of days shown per benefit period, with prior "
     "authorization. No prior hospital stay is required.", "$0 per day for days 1 to 20; $196 per day for "
     "days 21 to 100", "40% coinsurance per stay", None),
    ("Telehealth services", "Visits with network doctors and therapists by video or phone, through the "
     "plan's telehealth service or your own provider.", "$0 copay per visit", "Not covered", None),
    ("Urgently needed services", "Care for a sudden illness or injury that is not an emergency but needs "
     "care right away, at an urgent care center.", "$40 copay per visit", "$40 copay per visit", None),
    ("Vision care (medical)", "Exams to diagnose and treat diseases of the eye, glaucoma screening, and one "
     "pair of eyeglasses after cataract surgery.", "$45 copay per exam", "40% coinsurance", None),
]

PLAN_SUMMARY = [
    (["Monthly plan premium", "$42", "Included"], None),
    (["Annual deductible", "$0", "$750"], None),
    (["Maximum out-of-pocket amount", "$5,900", "$9,400 (combined in and out of network)"], "cost_moop"),
    (["Primary care visit", "$0", "30% coinsurance"], None),
]

REMARK_CODES = [
    ("RC-12", "The service was covered in full; you owe nothing."),
    ("RC-18", "This claim was a duplicate of one we already processed."),
    ("RC-22", "The service needs prior authorization, which we did not receive."),
    ("RC-27", "We need more information from your provider before we can pay."),
    ("RC-31", "The provider is not in our network, so the out-of-network cost sharing applies."),
    ("RC-36", "The service is not covered by your plan."),
    ("RC-40", "The claim was filed after the time limit for filing claims."),
    ("RC-44", "Another insurance plan must pay first; send us its explanation of benefits."),
    ("RC-53", "The amount shown was applied to your deductible."),
    ("RC-58", "A referral from your primary care provider was required and is not on file."),
]


def _benefits_chart(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Medical Benefits Chart (what is covered and what you pay)")
    p.section("Understanding your out-of-pocket costs")
    p.para("This chapter focuses on your covered services and what you pay for your medical benefits. It "
           "includes a Medical Benefits Chart that lists your covered services and shows how much you will "
           "pay for each covered service as a member of our plan.")
    p.para("There is a limit to how much you have to pay out of pocket each year for in-network covered "
           "services. Once you reach it, you pay nothing for covered in-network services for the rest of the "
           "calendar year. The limits are in the table below.")
    p.table(["Plan summary", "In network", "Out of network"], PLAN_SUMMARY, [60, 35, 55])
    p.filler(rng, "out-of-pocket costs", 2)
    p.section("The Medical Benefits Chart")
    p.para("The chart lists the services the plan covers and what you pay for each. Services are covered "
           "only when they are medically necessary, are provided by a network provider unless the chart says "
           "otherwise, and have prior authorization where the chart requires it.")
    p.filler(rng, "the Medical Benefits Chart", 1)
    # The chart, in parts with prose between them as in printed booklets.
    parts = [SERVICES[i:i + 10] for i in range(0, len(SERVICES), 10)]
    for n, part in enumerate(parts):
        p.table(["Services that are covered for you", "In network", "Out of network"],
                [([f"**{name}**\n{desc}", inn, out], fact) for name, desc, inn, out, fact in part], [80, 38, 32],
                first_bold=True)
        if n < len(parts) - 1:
            p.filler(rng, part[-1][0].lower(), 2, heading=True)
    p.section("Understanding your Explanation of Benefits")
    p.para("Each time we process a claim for you, we send an Explanation of Benefits. Remark codes next to each "
           "line explain how the claim was handled.")
    p.table(["Remark code", "What it means"], [([c, m], "rc_31" if c == "RC-31" else None) for c, m in REMARK_CODES],
            [25, 110])
    p.filler(rng, "your Explanation of Benefits", 3)


EXCLUSIONS = [
    ("Acupuncture", "", "Covered only for chronic low back pain (see the Medical Benefits Chart).", None),
    ("Cosmetic surgery or procedures", "", "Covered only in cases of an accidental injury or to improve "
     "the function of a malformed body part, and for all stages of breast reconstruction after a mastectomy.",
     "excl_cosmetic"),
    ("Custodial care: help with activities of daily living such as bathing or dressing",
     "Not covered under any condition", "", "excl_custodial"),
    ("Experimental medical and surgical procedures, equipment and medications", "",
     "May be covered in a qualifying clinical research study.", None),
    ("Fees charged for care by your immediate relatives or members of your household",
     "Not covered under any condition", "", None),
    ("Full-time nursing care in your home", "Not covered under any condition", "", None),
    ("Home-delivered meals", "", "Covered only after a hospital stay, as a supplemental benefit (Chapter 6).",
     None),
    ("Homemaker services, including basic household help", "Not covered under any condition", "", None),
    ("In vitro fertilization and other assisted reproduction", "Not covered under any condition", "",
     "excl_ivf"),
    ("Naturopath services (natural or alternative treatments)", "Not covered under any condition", "",
     "excl_naturopath"),
    ("Non-routine dental care", "", "Dental care needed to treat an illness or injury may be covered as "
     "inpatient or outpatient care.", None),
    ("Orthopedic shoes or supportive devices for the feet", "", "Shoes that are part of a leg brace, and "
     "therapeutic shoes for members with diabetic foot disease.", "excl_shoes"),
    ("Personal items in your hospital or nursing facility room, such as a telephone or a television",
     "Not covered under any condition", "", None),
    ("Private room in a hospital", "", "Covered only when it is medically necessary, for example to "
     "isolate an infection.", "excl_private_room"),
    ("Radial keratotomy, LASIK surgery and other low vision aids", "Not covered under any condition", "",
     "excl_lasik"),
    ("Reversal of sterilization procedures and non-prescription contraceptive supplies",
     "Not covered under any condition", "", None),
    ("Routine chiropractic care", "", "Manual manipulation of the spine to correct a subluxation is covered.",
     None),
    ("Routine foot care", "", "Some limited coverage for members with certain medical conditions, such as "
     "diabetes with nerve damage.", "excl_foot_care"),
    ("Services considered not reasonable and necessary", "Not covered under any condition", "", None),
    ("Wigs and hair pieces", "Not covered under any condition", "", None),
]


def _exclusions(p: _Pdf, rng: random.Random) -> None:
    p.chapter("What is not covered")
    p.section("Services we do not cover (exclusions)")
    p.para("This section tells you what services are excluded from coverage. If you get services that are "
           "excluded, you must pay for them yourself, and we will not pay for them in the situations listed, "
           "except under the specific conditions shown. Even if you receive an excluded service at an "
           "emergency facility, it is still not covered.")
    p.table(["Service", "Not covered under any condition", "Covered only under specific conditions"],
            [([name, never, only], fact) for name, never, only, fact in EXCLUSIONS], [50, 32, 60])
    p.filler(rng, "excluded services", 3)
    p.section("If you believe an exclusion should not apply to you")
    p.filler(rng, "a denied service", 3)


TIERS = [
    (["Tier 1 (preferred generic)", "$0", "$0", "$10"], None),
    (["Tier 2 (generic)", "$8", "$16", "$20"], None),
    (["Tier 3 (preferred brand)", "$42", "$105", "$47"], None),
    (["Tier 4 (non-preferred drug)", "$95", "$255", "$100"], "cost_tier4"),
    (["Tier 5 (specialty)", "33% coinsurance", "Not available", "33% coinsurance"], None),
    (["Insulin (any tier)", "$35", "$70", "$35"], None),
]


def _drugs(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Prescription drugs")
    p.section("Basic rules for the plan's drug coverage")
    p.para("The plan generally covers your drugs as long as you follow these basic rules: a provider writes "
           "the prescription, you use a network pharmacy, and the drug is on the plan's List of Covered Drugs "
           "(the Drug List, also called the formulary).")
    p.filler(rng, "your prescription drugs", 2)
    p.section("What you pay for drugs")
    p.para("Your cost sharing depends on the drug's tier and on where you fill the prescription. The table "
           "shows what you pay for a one-month supply at a network retail pharmacy, a three-month supply, and "
           "a one-month supply at an out-of-network pharmacy in an emergency.")
    p.table(["Drug tier", "Retail, one-month supply", "Retail or mail order, three-month supply",
             "Out-of-network pharmacy, one-month supply"], TIERS, [46, 30, 38, 36])
    p.filler(rng, "drug tiers", 2)
    p.section("The Drug List and its restrictions")
    p.para("Some drugs have coverage rules such as prior authorization, step therapy, where you must first try "
           "a less costly drug, and quantity limits. Your prescriber can ask us to make an exception.")
    p.para("If we remove a drug from the Drug List or add new restrictions on it, we will tell you in writing "
           "at least thirty days before the change takes effect, or give you a one-month supply when you ask "
           "for a refill.", fact="drug_removed")
    p.filler(rng, "the Drug List", 3)
    p.section("Asking for an exception")
    p.para("You, your representative or your prescriber can ask us to cover a drug that is not on the Drug "
           "List, or to waive a restriction. Mail or fax the Formulary Exception Request, Form EOC-309, to "
           "Cedar Valley Health Plan, Pharmacy Exceptions, PO Box 4432, Cedar City, fax 1-800-555-0191.",
           fact="form_309")
    p.steps("How to ask for a formulary exception", [
        "Ask your prescriber for a supporting statement explaining why the drugs on our Drug List are not right "
        "for you.",
        "Fill in the exception request, or ask your prescriber to call the pharmacy help desk on your behalf.",
        "Send the request with the prescriber's statement; we decide within the standard time frame, or "
        "faster when your health requires it.",
        "If we approve the exception, it lasts until the end of the plan year; if we deny it, you can appeal.",
    ], fact="steps_exception")
    p.filler(rng, "drug exceptions", 2)
    p.section("Filling prescriptions by mail")
    p.steps("How to start using mail-order pharmacy service", [
        "Ask your doctor for a prescription for up to a three-month supply of a drug you take regularly.",
        "Register with CedarRx Home Delivery on the member website or by calling the pharmacy help desk.",
        "Have your doctor send the prescription electronically, or mail the paper prescription with the "
        "order form.",
        "Your order arrives within about ten days; set up automatic refills so that you do not run out.",
    ], fact="steps_mail_order")
    p.filler(rng, "mail-order prescriptions", 2)
    p.section("Specialty drugs and vaccines")
    p.filler(rng, "specialty drugs", 2)
    p.filler(rng, "vaccines", 2, heading=True)
    p.section("Drug safety and managing medications")
    p.filler(rng, "medication therapy management", 3)


SUPPLEMENTAL = [
    (["Dental: preventive", "Two cleanings and two oral exams per year; one set of bitewing X-rays per year",
      "$0"], None),
    (["Dental: comprehensive", "Fillings, root canals, extractions and crowns, up to the annual maximum",
      "50% coinsurance; $1,500 plan maximum per year"], None),
    (["Vision: routine eye exam", "One exam per year with a ClearView Vision provider", "$0"], None),
    (["Vision: eyewear", "Eyeglasses (frames and lenses) or contact lenses", "Up to $175 allowance every year"],
     "cost_eyewear"),
    (["Hearing: routine hearing exam", "One exam per year with a SoundPath Hearing provider", "$0"], None),
    (["Hearing: hearing aids", "Up to two hearing aids, one per ear, fitting and follow-up visits included",
      "Up to $1,250 allowance per ear every three years"], "cost_hearing_aid"),
    (["Over-the-counter items", "Vitamins, first aid supplies and other approved items from the catalogue",
      "$60 allowance per quarter"], None),
    (["Fitness program", "Membership at participating gyms or home fitness kits", "$0"], None),
    (["Meals after a hospital stay", "Home-delivered meals after discharge from an inpatient stay",
      "$0 for up to 14 meals per stay"], None),
    (["Transportation", "Rides to plan-approved medical locations with RideWell", "$0 for up to 24 one-way trips "
      "per year"], None),
]


def _supplemental(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Extra benefits: dental, vision, hearing and wellness")
    p.section("About supplemental benefits")
    p.para("Our plan covers some services that are not part of the standard medical benefits, such as routine "
           "dental, vision and hearing care. These supplemental benefits are provided by partner companies, "
           "and you must use their networks.")
    p.table(["Benefit", "What is covered", "What you pay or the plan's limit"], SUPPLEMENTAL, [35, 62, 45])
    p.filler(rng, "supplemental benefits", 2)
    p.section("Dental care")
    p.filler(rng, "routine dental care", 3)
    p.section("Vision care")
    p.filler(rng, "routine vision care", 3)
    p.section("Hearing care")
    p.filler(rng, "hearing aids", 3)
    p.section("Fitness and wellness programs")
    p.para("To join a participating gym or order a home fitness kit, complete the Fitness Program Enrollment "
           "form, Form EOC-271, on the member website.")
    p.filler(rng, "the fitness program", 2)
    p.section("Over-the-counter allowance")
    p.filler(rng, "over-the-counter items", 2)
    p.section("Care management programs")
    p.filler(rng, "care management", 3)


def _claims(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Asking us to pay our share of a bill you have received")
    p.section("Situations in which you should ask us to pay")
    p.para("Sometimes when you get medical care or a prescription drug, you may need to pay the full cost. "
           "Other times, you may find that you have paid more than you expected under the coverage rules of the "
           "plan. In either case, you can ask us to pay you back; this is often called reimbursing you.")
    p.filler(rng, "bills from providers", 3)
    p.section("How to ask us to pay you back or to pay a bill you have received")
    p.para("The Member Reimbursement Claim, Form EOC-214, is the form you use to ask us to pay you back for "
           "covered care or drugs you paid for yourself; you can download it from the member website.",
           fact="form_214")
    p.steps("How to file a claim for reimbursement", [
        "Fill in the claim form with your name, member number and the date and place of the service.",
        "Attach the itemized bill from the provider and the receipt or other proof that you paid it.",
        "Mail the form and documents to Cedar Valley Health Plan, Claims Department, PO Box 4420, Cedar City, "
        "within the claim filing time limit.",
        "We will send you an Explanation of Benefits when we have decided, and a check if we owe you money.",
    ], fact="steps_claim")
    p.filler(rng, "claims for reimbursement", 2)
    p.section("We will consider your request and say yes or no")
    p.filler(rng, "payment requests", 3)
    p.section("Time limits at a glance")
    p.para("The table below lists the time limits for the requests described in this booklet. A time limit "
           "counts calendar days from the date shown.")
    p.table(["Request", "Time limit"], [
        (["Ask us to pay a bill for medical care (claim)", "365 days from the date of service"], None),
        (["Ask us to pay you back for a prescription drug", "90 days from the date you filled it"], None),
        (["Level 1 appeal about medical care (reconsideration)", "65 days from the date on the coverage "
          "decision letter"], "deadline_appeal"),
        (["Level 1 appeal about a prescription drug (redetermination)", "60 days from the date on the coverage "
          "decision letter"], None),
        (["File a grievance (complaint)", "60 days after the event you are complaining about"], None),
        (["Ask for an independent review (Level 2)", "60 days from the date on our Level 1 decision"], None),
    ], [80, 60])


def _rights(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Your rights and responsibilities")
    p.section("We must provide information in a way that works for you")
    p.para("Interpreter services are free of charge for members who prefer to speak a language other than "
           "English, including sign language interpretation at your appointments.", fact="interpreter")
    p.filler(rng, "accessible information", 2)
    p.section("We must treat you with fairness and respect")
    p.filler(rng, "your rights as a member", 3)
    p.section("We must protect the privacy of your personal health information")
    p.para("To let someone else, such as a family member, receive information about your health care, send us "
           "the Authorization to Release Health Information, Form EOC-126.")
    p.filler(rng, "your health information", 3)
    p.section("You have the right to make decisions about your care")
    p.filler(rng, "advance directives", 3)
    p.section("Your responsibilities as a member")
    p.filler(rng, "your responsibilities", 3)


def _problems(p: _Pdf, rng: random.Random) -> None:
    p.chapter("What to do if you have a problem or complaint")
    p.section("What to do if you have a problem or concern")
    p.para("This chapter explains two processes for handling problems and concerns: for some problems you "
           "use the process for coverage decisions and appeals; for others, the process for making "
           "complaints, also called grievances.")
    p.filler(rng, "problems and concerns", 2)
    p.section("You can appoint a representative")
    p.para("A friend, relative, your doctor or another person can act for you. To name a representative, "
           "sign the Appointment of Representative, Form EOC-433, together with that person, and send it with "
           "your request.", fact="form_433")
    p.filler(rng, "your representative", 2)
    p.section("Coverage decisions and appeals about medical care")
    p.para("A coverage decision is a decision we make about your benefits and coverage, or about the amount we "
           "will pay for your medical services. If we say no, you can appeal: you ask us to review and change "
           "our decision. The first appeal is called a Level 1 appeal, or reconsideration.")
    p.steps("How to ask for a Level 1 appeal about medical care", [
        "Read the coverage decision letter: it says why we said no and the date from which the appeal "
        "time limit counts.",
        "Write to us, or call Member Services, and ask us to reconsider; you can use the Request for "
        "Reconsideration, Form EOC-412.",
        "Send any doctor's letters, test results or records that support your appeal; you may ask for a copy "
        "of the information we used.",
        "We answer within thirty days for care you have not yet received; if we still say no, your case goes "
        "to an independent review organization automatically.",
    ], fact="steps_appeal")
    p.filler(rng, "appeals about medical care", 2)
    p.steps("How to ask for a fast appeal", [
        "Ask for a fast appeal by phone or in writing if waiting the standard time could seriously harm your "
        "health or your ability to function.",
        "If your doctor tells us that your health requires a fast appeal, we will give you one automatically.",
        "We answer a fast appeal within seventy-two hours and call you with our decision.",
        "If we say no, your case is sent to the independent review organization, which also decides quickly.",
    ], fact="steps_fast_appeal")
    p.filler(rng, "fast appeals", 2)
    p.section("Coverage decisions and appeals about prescription drugs")
    p.para("A coverage decision about a drug is also called a coverage determination; ask for one with the "
           "Coverage Determination Request, Form EOC-305. An appeal about a drug is called a redetermination; "
           "use the Request for Redetermination, Form EOC-418.")
    p.steps("How to ask for a redetermination of a drug decision", [
        "Read our coverage determination letter and note the reason for the denial.",
        "Send a written request for redetermination, or ask your prescriber to call us on your behalf.",
        "Include a statement from your prescriber that supports your request.",
        "We give you our answer within seven days, or within seventy-two hours for a fast redetermination.",
    ])
    p.filler(rng, "drug appeals", 2)
    p.section("Taking your appeal to Level 2 and beyond")
    p.filler(rng, "independent review", 3)
    p.section("How to make a complaint about quality of care, waiting times or customer service")
    p.para("A complaint, or grievance, is about problems such as the quality of your care, waiting times, the "
           "way you were treated, or the cleanliness of a facility. Complaints are not about coverage or "
           "payment decisions.")
    p.steps("How to file a grievance", [
        "Call Member Services or write to us; you can use the Grievance Form, Form EOC-420.",
        "Describe what happened, when and where it happened, and the names of the people involved.",
        "We confirm that we received your complaint and may contact you for more details.",
        "We answer in writing, usually within thirty days; ask for a fast complaint if we refused a fast appeal.",
    ], fact="steps_grievance")
    p.filler(rng, "complaints", 3)


def _ending(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Ending your membership in the plan")
    p.section("Introduction to ending your membership")
    p.para("Ending your membership in our plan may be voluntary, your own choice, or involuntary, not your "
           "own choice. Until your membership ends, you must keep getting your care through our plan.")
    p.filler(rng, "ending your membership", 2)
    p.section("How to end your membership")
    p.para("The Disenrollment Request, Form EOC-502, is the written request you send us when you choose to "
           "leave the plan.", fact="form_502")
    p.steps("How to end your membership in the plan", [
        "Check that you are in an enrollment period or otherwise allowed to leave the plan.",
        "Enroll in your new plan if you have one; in most cases this ends your membership in our plan "
        "automatically.",
        "Otherwise, send us the signed disenrollment request, or call Member Services and ask to leave the plan.",
        "Keep using our network until the date your membership ends, shown in the letter we send you.",
    ], fact="steps_disenroll")
    p.filler(rng, "disenrollment", 2)
    p.section("We must end your membership in certain situations")
    p.para("If you do not pay your plan premium by the due date, we will send you a notice; if payment is still "
           "not received by the end of the grace period, your membership will end.", fact="premium_late")
    p.filler(rng, "involuntary disenrollment", 3)


def _legal(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Legal notices")
    p.section("Notice about governing law")
    p.filler(rng, "the laws that apply to this booklet", 2)
    p.section("Notice about nondiscrimination")
    p.para("We do not discriminate based on race, ethnicity, national origin, color, religion, sex, gender, "
           "age, mental or physical disability, health status, claims experience, medical history, genetic "
           "information, evidence of insurability, or geographic location within the service area.")
    p.filler(rng, "nondiscrimination", 2)
    p.section("Language assistance")
    for language in ("Spanish", "Chinese", "Vietnamese", "Tagalog", "Korean", "Russian", "Arabic",
                     "Haitian Creole", "French", "Polish", "Portuguese", "Italian", "German", "Japanese"):
        p.para(f"ATTENTION: If you speak {language}, language assistance services, free of charge, are "
               "available to you. Call Member Services.")
    p.section("Notice about subrogation and third-party recovery")
    p.filler(rng, "third-party recovery", 3)


DEFINITIONS = [
    ("Allowed amount", "The maximum amount the plan pays for a covered service, on which your cost sharing is "
     "based."),
    ("Appeal", "Something you do if you disagree with our decision to deny a request for coverage or payment."),
    ("Benefit period", "The way the plan measures your use of hospital and skilled nursing facility services."),
    ("Brand name drug", "A prescription drug made and sold by the company that originally researched it."),
    ("Coinsurance", "An amount you may be required to pay, expressed as a percentage, as your share of the "
     "cost for services or prescription drugs."),
    ("Complaint", "The formal name for making a complaint is filing a grievance."),
    ("Copayment or copay", "An amount you may be required to pay as your share of the cost for a medical "
     "service or supply, such as a doctor's visit or a prescription; a copayment is a set amount."),
    ("Cost sharing", "Amounts that a member has to pay when services or drugs are received: deductibles, "
     "copayments and coinsurance."),
    ("Coverage determination", "A decision about whether a drug prescribed for you is covered and the amount, "
     "if any, you must pay."),
    ("Custodial care", "Personal care that does not require the continuing attention of trained medical "
     "personnel, such as help with bathing, dressing or eating."),
    ("Deductible", "The amount you must pay for health care or prescriptions before our plan pays."),
    ("Durable medical equipment", "Certain medical equipment ordered by your doctor for use at home."),
    ("Emergency", "A situation in which you reasonably believe your health is in serious danger."),
    ("Evidence of Coverage", "This document, together with your enrollment form and any other attachments, "
     "which explains your coverage."),
    ("Exception", "A type of coverage decision that, if approved, lets you get a drug that is not on the Drug "
     "List or removes a restriction."),
    ("Generic drug", "A prescription drug with the same active ingredient as the brand name drug."),
    ("Grievance", "A type of complaint you make about the plan, providers or pharmacies, including a complaint "
     "about the quality of your care."),
    ("In-network provider", "A provider who has an agreement with the plan to accept our payment as payment "
     "in full."),
    ("Maximum out-of-pocket amount", "The most that you pay during the calendar year for in-network covered "
     "services."),
    ("Medically necessary", "Services or supplies needed for the prevention, diagnosis or treatment of your "
     "medical condition that meet accepted standards of medical practice."),
    ("Network pharmacy", "A pharmacy that contracts with our plan where members can get their prescription "
     "drug benefits."),
    ("Out-of-network provider", "A provider with whom we have not arranged to coordinate or provide covered "
     "services to members of our plan."),
    ("Premium", "The periodic payment to the plan for health care or prescription drug coverage."),
    ("Primary care provider", "The doctor or other provider you see first for most health problems."),
    ("Prior authorization", "Approval in advance to get services or certain drugs."),
    ("Referral", "A written order from your primary care provider for you to visit a specialist or get "
     "certain medical services."),
    ("Service area", "The geographic area where you must live to join the plan."),
    ("Specialist", "A doctor who provides health care services for a specific disease or part of the body."),
    ("Step therapy", "A utilization tool that requires you to first try another drug to treat your condition."),
    ("Urgently needed services", "Care for a sudden illness, injury or condition that is not an emergency but "
     "needs care right away."),
]


def _definitions(p: _Pdf, rng: random.Random) -> None:
    p.chapter("Definitions of important words")
    p.para("This chapter explains words used in this booklet that have a special meaning.")
    for term, meaning in DEFINITIONS:
        p.para(f"{term} - {meaning}")
    p.filler(rng, "the words used in this booklet", 2, heading=True)


def _cover(p: _Pdf) -> None:
    p.doc.add_page()
    p.doc.set_font("Helvetica", "B", 26)
    p.doc.ln(40)
    p.doc.multi_cell(0, 12, f"{YEAR}\nEvidence of Coverage", align="C", new_x="LMARGIN", new_y="NEXT")
    p.doc.ln(8)
    p.doc.set_font("Helvetica", "", 15)
    p.doc.multi_cell(0, 8, f"{PLAN}\nCedar Valley Health Plan, Inc.", align="C", new_x="LMARGIN", new_y="NEXT")
    p.doc.ln(20)
    p.doc.set_font("Helvetica", "", 11)
    p.doc.multi_cell(0, 6, "Your health benefits and services and prescription drug coverage as a member of "
                     f"{PLAN}, January 1 - December 31, {YEAR}.\nMember Services: 1-800-555-0142 (TTY 711).",
                     align="C", new_x="LMARGIN", new_y="NEXT")


# More sections per chapter, each about a topic that shares the booklet's vocabulary.
MORE = {
    "_getting_started": ["enrollment periods", "your plan premium", "late enrollment", "employer group coverage",
                         "your welcome kit"],
    "_phone_numbers": ["the member website", "the state health insurance assistance program",
                       "care coordinators"],
    "_using_the_plan": ["hospital care", "skilled nursing facility care", "durable medical equipment rentals",
                        "home health services", "urgently needed services", "preventive screenings",
                        "care in rural areas", "care from nurse practitioners", "ambulance transportation",
                        "visits to specialists", "hospital admissions"],
    "_benefits_chart": ["outpatient services", "preventive services", "lab tests and imaging",
                        "rehabilitation services", "behavioral health visits", "maternity care",
                        "dialysis", "allergy care", "imaging tests such as MRI and CT scans"],
    "_exclusions": ["services that are not medically necessary", "care from excluded providers",
                    "cosmetic and reconstructive procedures", "fertility services", "foot care",
                    "vision correction", "alternative therapies", "nursing home care"],
    "_drugs": ["drug payment stages", "long-term care pharmacies", "drugs covered under the medical benefit",
               "generic substitution", "out-of-network pharmacies", "prescription transfers"],
    "_supplemental": ["the wellness rewards program", "disease management programs", "the meal benefit",
                      "eyeglasses and contact lenses", "hearing aid fittings"],
    "_claims": ["claims from out-of-network providers", "bills for emergency care", "drug claims"],
    "_rights": ["access to your medical records", "timely access to care", "information about the plan",
                "your right to complain", "fraud prevention"],
    "_problems": ["independent review organizations", "hospital discharge appeals",
                  "appeals about ending skilled care", "judicial review"],
    "_ending": ["special enrollment periods", "coverage after your membership ends",
                "membership when you enter a hospital"],
    "_legal": ["coordination with workers' compensation", "member liability"],
}

# Identifiers that some question asks about: each is printed exactly once.
IDENTIFIERS = ("EOC-214", "EOC-309", "EOC-433", "1-800-555-0173", "CV-HMO-034", "RC-31", "EOC-502",
               "1-800-555-0155", "EOC-241")
_AMOUNT = re.compile(r"\$\d|\d+ ?%")


def build(path: Path) -> Booklet:
    """Write the booklet to ``path`` and say where each question's answer lands."""
    rng = random.Random(SEED)
    p = _Pdf()
    _cover(p)
    p.contents()
    for chapter in (_getting_started, _phone_numbers, _using_the_plan, _benefits_chart, _exclusions, _drugs,
                    _supplemental, _claims, _rights, _problems, _ending, _legal, _definitions):
        chapter(p, rng)
        for topic in MORE.get(chapter.__name__, ()):  # the distractors: sections that answer nothing asked
            p.section(topic[0].upper() + topic[1:])
            p.filler(rng, topic, 4)
            p.filler(rng, topic, 3, heading=True)
    p.doc.output(str(path))
    everything = p.prose + p.cells
    for identifier in IDENTIFIERS:
        count = sum(t.count(identifier) for t in everything)
        assert count == 1, f"{identifier} is printed {count} times"
    amounts = [t for t in p.prose if _AMOUNT.search(t)]
    assert not amounts, f"amounts belong in table cells only: {amounts[0]!r}"
    missing = {f for q in QUESTIONS for f in q.facts} - set(p.fact_pages)
    assert not missing, f"facts never written: {sorted(missing)}"
    return Booklet(path, p.doc.page_no(), list(QUESTIONS), p.fact_pages, p.fact_texts)


if __name__ == "__main__":  # python bench/retrieval_data/booklet.py OUT.pdf: look at it
    import sys

    made = build(Path(sys.argv[1] if len(sys.argv) > 1 else "booklet.pdf"))
    print(f"{made.path}: {made.pages} pages")
    for q in made.questions:
        print(q.id, q.kind, sorted(made.answer_pages(q)), q.question)
