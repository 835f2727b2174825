"""R2: sentences that ask the school something (the rest of needs_response is in the lexicon)."""

from __future__ import annotations

import re

from monitor.classify.assessment import RuleMatch
from monitor.classify.patterns import compile_pattern
from monitor.classify.text import NormalisedText
from monitor.constants import Category, Severity

RULE_ID = "NR-QUESTION"
REASON = "asks the school a question"
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
# Opening words dropped before judging a sentence.
_OPENERS = compile_pattern(
    "(hi|hello|hiya|hey|morning|afternoon|evening|good (morning|afternoon|evening)|dear (sir|madam"
    "|all)|sorry|please|quick question|just a quick one|excuse me|um|erm|so|ok|okay|and|but)"
)
# Questions that expect no answer: exclamations, cheering, spam.
_RHETORICAL = tuple(
    compile_pattern(p)
    for p in (
        "(how|what) (a|an)? (so)? (amazing|lovely|fab*|brilliant|cute|great|fantastic|wonderful"
        "|beautiful|gorgeous|proud|sweet|adorable|cool|awesome|incredible|special|good|day|team"
        "|night|result|performance|bunch|achievement)",
        "(isnt|arent|wasnt|werent) (it|this|that|he|she|they|these|those) (just|so)? (amazing"
        "|lovely|fab*|brilliant|cute|great|fantastic|wonderful|beautiful|gorgeous|sweet|adorable"
        "|awesome|incredible|the best)",
        "who else",
        "(can|could) (you|u|anyone|anybody) (believe|imagine)",
        "(right|eh|innit|lol|haha*|surely not|really|seriously|why not|who knew)",
        "who (doesnt|wouldnt|dont) (love|want|like)",
        "guess (who|what)",
        "(want|need|looking for) (more)? (followers|likes|views|subscribers|money)",
    )
)


def _openers_removed(sentence: str) -> str:
    while (m := _OPENERS.match(sentence)) is not None:
        rest = sentence[m.end() :].lstrip(" ,:;-")
        if rest == sentence or not rest:
            break
        sentence = rest
    return sentence


def find_questions(norm: NormalisedText) -> list[tuple[RuleMatch, Severity]]:
    """Each sentence ending in ``?`` that is not a cheer or an exclamation."""
    out = []
    for m in _SENTENCE.finditer(norm.text):
        sentence = m.group()
        if "?" not in sentence or not any(c.isalnum() for c in sentence):
            continue
        body = _openers_removed(sentence.strip(" \t,;:-"))
        if any(p.match(body) for p in _RHETORICAL):
            continue
        start = m.start() + (len(sentence) - len(sentence.lstrip()))
        o_start, o_end = norm.span(start, m.end())
        match = RuleMatch(
            rule_id=RULE_ID,
            category=Category.NEEDS_RESPONSE,
            start=o_start,
            end=o_end,
            matched=norm.original[o_start:o_end],
            reason=REASON,
        )
        out.append((match, Severity.LOW))
    return out
