"""Every rule, as a table: texts it must flag, texts it must leave alone."""

from __future__ import annotations

import pytest

from monitor.classify.engine import RuleEngine, combine
from monitor.classify.rules import builtin_lexicon
from monitor.config_models import School
from monitor.constants import Category, Severity

SCHOOL = School(key="oakfield", name="Oakfield Academy", aliases=["Oakfield", "OFA"])

# (rule id, text): the rule must fire on the text.
FIRES = [
    ("SG-SUICIDE", "honestly thinking about suicide again"),
    ("SG-SUICIDE", "i want to k1ll myself"),
    ("SG-SUICIDE", "I'm going to end it all"),
    ("SG-SUICIDE", "wish i was dead tbh"),
    ("SG-SUICIDE", "sh3 said she wants to die"),
    ("SG-SUICIDE", "i dont want to be alive anymore"),
    ("SG-SUICIDE", "took all my mums pills last night"),
    ("SG-SUICIDE", "s u i c i d a l thoughts"),
    ("SG-SUICIDE", "kms"),
    ("SG-SUICIDE", "i just want to sleep and never wake up"),
    ("SG-SUICIDE", "feeling so worthless lately"),
    ("SG-SELF-HARM", "she has been self-harming"),
    ("SG-SELF-HARM", "caught him cutting again"),
    ("SG-SELF-HARM", "scratches her arms till they bleed"),
    ("SG-SELF-HARM", "not eaten for days"),
    ("SG-SELF-HARM-INCITE", "just kys"),
    ("SG-SELF-HARM-INCITE", "go and kill yourself"),
    ("SG-SELF-HARM-INCITE", "they told her to go die"),
    ("SG-GROOMING", "send me a pic babe"),
    ("SG-GROOMING", "don't tell your parents about this"),
    ("SG-GROOMING", "whats her insta?"),
    ("SG-GROOMING", "the girl on the right is well fit"),
    ("SG-GROOMING", "an older man keeps messaging my daughter"),
    ("SG-GROOMING", "she's been asked to send nudes"),
    ("SG-GROOMING", "he is being made to deliver parcels for the older lads"),
    ("SG-GROOMING", "someone pretending to be a 12 year old"),
    ("SG-ABUSE-DISCLOSURE", "my mums boyfriend hits me"),
    ("SG-ABUSE-DISCLOSURE", "too scared to go home"),
    ("SG-ABUSE-DISCLOSURE", "a teacher touched her inappropriately"),
    ("SG-ABUSE-DISCLOSURE", "no food in the house again"),
    ("SG-ABUSE-DISCLOSURE", "he came into school with a black eye"),
    ("SG-ABUSE-DISCLOSURE", "dad gets drunk and goes mad"),
    ("SG-ABUSE-DISCLOSURE", "same dirty uniform every day"),
    ("SG-BULLYING", "my son is being bullied"),
    ("SG-BULLYING", "they keep picking on her"),
    ("SG-BULLYING", "she got jumped on the way home"),
    ("SG-BULLYING", "look at the ugly one at the back"),
    ("SG-BULLYING", "nobody will sit with him at lunch"),
    ("SG-RISK-VIOLENCE", "a lad brought a knife in today"),
    ("SG-RISK-VIOLENCE", "big fight planned after school"),
    ("SG-RISK-VIOLENCE", "kids doing the blackout challenge"),
    ("SG-RISK-VIOLENCE", "year 8s vaping in the toilets"),
    ("SG-RISK-VIOLENCE", "our daughter has gone missing"),
    ("SG-RISK-VIOLENCE", "someone selling vapes to year 7s"),
    ("SG-HATE", "muslims should be deported"),
    ("SG-HATE", "gay people are disgusting"),
    ("THR-VIOLENCE", "I'm going to stab that teacher"),
    ("THR-VIOLENCE", "someone should bomb the school"),
    ("THR-VIOLENCE", "i'll smash her face in"),
    ("THR-INTIMIDATION", "we know where you live"),
    ("THR-INTIMIDATION", "watch your back sir"),
    ("THR-INTIMIDATION", "you'll regret this"),
    ("THR-INTIMIDATION", "I'll be waiting for you outside after school"),
    ("THR-INTIMIDATION", "better hope I don't see you"),
    ("ABU-SWEARING-AT", "f*** off"),
    ("ABU-SWEARING-AT", "fuck the lot of you"),
    ("ABU-INSULT", "what a twat"),
    ("ABU-INSULT", "absolute w4nker"),
    ("ABU-SLUR", "the head is a retard"),
    ("ABU-INSULT-AT", "you absolute idiot"),
    ("ABU-INSULT-AT", "what an excuse for a teacher"),
    ("ABU-HATE", "kick them all out of our country"),
    ("ABU-SELF-HARM-INCITE", "kys loser"),
    ("ABU-PUPIL-INSULT", "that fat kid in the photo"),
    ("MED-JOURNALIST", "I'm a reporter for the Evening Post"),
    ("MED-JOURNALIST", "this is a press enquiry"),
    ("MED-STORY", "we're writing a feature for the Echo and would like a comment"),
    ("MED-OUTLET", "BBC Radio Leeds here, could the head do an interview?"),
    ("NR-QUESTION", "When is the next INSET day?"),
    ("NR-ASKS", "does anyone know what time pick up is"),
    ("NR-ASKS", "Is there a homework club on Fridays"),
    ("NR-REQUEST", "please can someone call me back"),
    ("NR-REQUEST", "let me know asap"),
    ("NR-REQUEST", "any update on the heating"),
    ("NR-COMPLAINT", "I'd like to make a formal complaint"),
    ("NR-COMPLAINT", "still waiting for a reply"),
    ("NR-COMPLAINT", "nobody has got back to me"),
    ("NEG-SCHOOL", "Oakfield is going downhill fast"),
    ("NEG-SCHOOL", "worst school in the area"),
    ("NEG-SCHOOL", "OFA got special measures"),
    ("NEG-GENERAL", "would not recommend"),
    ("NEG-ABOUT-SCHOOL", "would not recommend Oakfield to anyone"),
    ("NEG-ABOUT-SCHOOL", "the staff there are a bunch of clowns"),
    ("NEG-STAFF-ABUSE", "the head is a total muppet"),
    ("PD-PHONE", "text me on 07700 900 123"),
    ("PD-PHONE", "ring +44 (0)20 7946 0000"),
    ("PD-EMAIL", "my email is j.bloggs@example.co.uk"),
    ("PD-POSTCODE", "we're in SW1A 1AA"),
    ("PD-ADDRESS", "she lives at 12 Mill Lane"),
    ("PD-ADDRESS", "he lives at 4 station road"),
]

# (rule id or category, text): must NOT fire (ids end in their rule; categories are bare).
QUIET = [
    ("safeguarding", "Eid Mubarak to all our Muslim families"),
    ("safeguarding", "Proud to celebrate Pride month with our LGBT+ society"),
    ("safeguarding", "Our deaf and disabled pupils led the assembly"),
    ("safeguarding", "Black History Month display is stunning"),
    ("safeguarding", "the trans and non-binary pupils spoke brilliantly"),
    ("safeguarding", "Jewish and Christian communities joined the service"),
    ("safeguarding", "anti-bullying week odd socks day!"),
    ("safeguarding", "that brownie was to die for"),
    ("safeguarding", "killing it Year 7!"),
    ("safeguarding", "cutting it fine with the trip money"),
    ("safeguarding", "the PE kit has gone missing again"),
    ("safeguarding", "it really hit me how grown up they are"),
    ("safeguarding", "she hurt her ankle at netball"),
    ("safeguarding", "our secret weapon is the choir"),
    ("safeguarding", "a hot day for sports day"),
    ("safeguarding", "you f***ing idiot"),  # masked swearing is abuse, not a disclosure
    ("threat", "Lovely to see the kids killing it on stage"),
    ("abusive", "Lovely to hear the choir last night"),  # "night" is not a slur
    ("abusive", "We saw a cow and a pig at the farm"),
    ("abusive", "Year 1 saw a rat at the farm"),
    ("personal_data", "Well done Amelia!"),
    ("personal_data", "email office@oakfield.sch.uk"),
    ("personal_data", "Year 7 2nd place"),
    ("personal_data", "Results day is 21/08/2026"),
    ("personal_data", "raised £1,250 for charity"),
    ("personal_data", "There's only 1 other way to do it"),
    ("media_enquiry", "Saw this on the BBC news, well done"),
    ("needs_response", "How amazing is this?!"),
    ("needs_response", "Isn't this just lovely?"),
    ("needs_response", "Who else is proud of our Year 6s?"),
    ("negative_mention", "Oakfield is brilliant, best school around"),
    ("negative_mention", "not disappointed at all, lovely concert"),
]


@pytest.fixture(scope="module")
def engine() -> RuleEngine:
    return RuleEngine.for_school(SCHOOL)


def _ids(engine: RuleEngine, text: str) -> set[str]:
    return {match.rule_id for match, _ in engine.run(text)}


@pytest.mark.parametrize(("rule_id", "text"), FIRES)
def test_rule_fires(engine: RuleEngine, rule_id: str, text: str) -> None:
    assert rule_id in _ids(engine, text)


@pytest.mark.parametrize(("category", "text"), QUIET)
def test_rule_stays_quiet(engine: RuleEngine, category: str, text: str) -> None:
    assessment = combine(engine.run(text), None, {}, None)
    assert Category(category) not in assessment.categories, assessment.matches


# issue 16: subjectless words name no school or staff: NEG-ABOUT-SCHOOL stays quiet
@pytest.mark.parametrize(
    "text",
    [
        "would not recommend",
        "the ring road was utter chaos this morning",
        "the new burger place is a rip off, disgusting food",
    ],
)
def test_no_school_named_no_subject(engine: RuleEngine, text: str) -> None:
    assert "NEG-ABOUT-SCHOOL" not in _ids(engine, text)
    assert "NEG-SCHOOL" not in _ids(engine, text)


def test_every_lexicon_rule_has_a_case_above() -> None:
    tested = {rule_id for rule_id, _ in FIRES}
    missing = {spec.id for spec in builtin_lexicon().rules} - tested
    assert not missing, f"add a FIRES case for {sorted(missing)}"


def test_spans_point_into_the_original_text(engine: RuleEngine) -> None:
    text = "Ｈｉ — I’m gonna k i l l myself 😢 tonight"
    hits = engine.run(text)
    assert hits
    for match, _ in hits:
        assert text[match.start : match.end] == match.matched
    suicide = next(m for m, _ in hits if m.rule_id == "SG-SUICIDE")
    assert suicide.matched.endswith("myself")


def test_identity_words_alone_never_flag_anything(engine: RuleEngine) -> None:
    from monitor.classify.rules import builtin_lexicon as lexicon

    words = lexicon().macros["identity"].strip("()").replace("\n", " ").split("|")
    for word in words:
        plain = word.strip().rstrip("*")
        for text in (plain, f"our {plain} pupils", f"{plain} families are welcome"):
            assessment = combine(engine.run(text), None, {}, None)
            assert assessment.categories == frozenset(), (text, assessment.matches)


@pytest.mark.parametrize(
    ("text", "severity"),
    [
        ("I want to kill myself", Severity.CRITICAL),
        ("my son is being bullied", Severity.HIGH),
        ("watch your back", Severity.HIGH),
        ("Amelia Thornton won", Severity.NONE),  # no protected list in this engine
        ("call 07700 900123", Severity.MEDIUM),
        ("What time is pick up?", Severity.LOW),
        ("Lovely photos", Severity.NONE),
    ],
)
def test_severity_table(engine: RuleEngine, text: str, severity: Severity) -> None:
    assert combine(engine.run(text), None, {}, None).severity is severity


@pytest.mark.slow
def test_hostile_text_is_handled_quickly(engine: RuleEngine) -> None:
    import time

    for text in ("a" * 1_000_000, "k*" * 200_000, "<!channel> " * 10_000, "\u202e" * 5000 + "kys"):
        started = time.perf_counter()
        engine.run(text)
        assert time.perf_counter() - started < 5


# R10 for the concern model's complaint score: the same subject test as NEG-ABOUT-SCHOOL
# (the lexicon macro school_or_staff, with the school's own names), so a public mention
# counts only when the school or its staff are named in it.
@pytest.mark.parametrize(
    ("text", "score", "rule_id"),
    [
        (
            "Oakfield's open door policy: six emails, zero replies",
            0.9,
            "MODEL-NEGATIVE-ABOUT-SCHOOL",
        ),
        ("OFA lost my son's coursework twice", 0.85, "MODEL-NEGATIVE-ABOUT-SCHOOL"),
        ("the drama teacher never answers an email", 0.9, "MODEL-NEGATIVE-ABOUT-SCHOOL"),
        ("the ring road was utter chaos again this morning", 0.9, "MODEL-NEGATIVE-MENTION"),
        ("Still waiting on the EHCP review promised before Easter", 0.8, "MODEL-NEGATIVE-MENTION"),
        ("Oakfield's open door policy: six emails, zero replies", 0.79, None),  # under 0.8
    ],
)
def test_complaint_score_names_its_subject(
    engine: RuleEngine, text: str, score: float, rule_id: str | None
) -> None:
    named = engine.subjects_named(text)
    assessment = combine(
        [], {"concern_negative": score}, {"concern_negative": 0.8}, "m", named=named
    )
    ids = {m.rule_id for m in assessment.matches}
    assert ids == ({rule_id} if rule_id else set())
    assert (Category.NEGATIVE_MENTION in assessment.categories) is (rule_id is not None)
    assert assessment.severity is (Severity.LOW if rule_id else Severity.NONE)


def test_an_allow_listed_term_names_no_subject() -> None:
    school = SCHOOL.model_copy(update={"allow_terms": ["Head Lane"]})
    engine = RuleEngine.for_school(school)
    assert engine.subjects_named("roadworks on Head Lane again, what a mess") == frozenset()
    assert engine.subjects_named("the head is never here") == {"school_or_staff"}
    assert RuleEngine.for_school(None).subjects_named("the school is shut") == {"school_or_staff"}


# the folded text drops apostrophes: "Oakfield's" is "oakfields", still the school's name
@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("Oakfield's a shambles", "NEG-SCHOOL"),
        ("Oakfield’s open door policy is a disgrace", "NEG-ABOUT-SCHOOL"),
        ("what a bunch of morons at OFA's", "NEG-STAFF-ABUSE"),
    ],
)
def test_the_school_named_in_the_possessive(engine: RuleEngine, rule_id: str, text: str) -> None:
    assert rule_id in _ids(engine, text)
    assert engine.subjects_named(text) == {"school_or_staff"}
