"""A small multilingual cue lexicon for event types (English, Korean, Russian).

Why a lexicon beside the event model: the model learns from our training items,
which are mostly English; what a summit, a shipment of shells or a sanctions
listing is called in any outlet's wording, in three languages, is stable domain
knowledge that a few hundred examples cannot cover. The cues are added to the
model's log-probabilities (``classifiers.event_typer``), so either source alone
can decide a clear case and they vote on unclear ones.

Each cue is an *act* (the news itself: "treaty signed", "troops deployed",
weight 2) or a *topic* (vocabulary that often comes with a group, weight 1).
Cues in the headline count double: the headline says what happened, the
description adds context. Priority rules (``_absorbed``): defence vocabulary in a
sentence that also names a treaty, a summit, a visit or talks describes their
subject ("mutual defence treaty", "군사 원조 조항"), so it does not count for
arms/military there; and in a sentence naming sanctions, evasion or smuggling the
arms and trade words name what was sanctioned, so only the sanctions count.

Matching: Latin terms match at a word start ("ratif" finds "ratifies"); Hangul
and Cyrillic terms match anywhere, because both languages glue particles and
endings to the stem ("조약에는", "договора").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from classifiers.events import EVENT_GROUPS

ACT = 2.0
TOPIC = 1.0
HEADLINE_FACTOR = 2.0

#: Cues per group: (weight, terms). Terms are lower case; see the module doc for matching.
CUES: dict[str, tuple[tuple[float, tuple[str, ...]], ...]] = {
    "arms/military": (
        (ACT, (
            "troops", "troop$", "soldier", "servicem", "battalion", "contingent", "special forces",
            "deploy", "shells", "artillery", "ammunition", "munition", "ballistic", "missiles",
            "rocket launcher", "howitzer", "self-propelled", "mlrs", "weapons", "arms deliver",
            "arms transfer", "arms deal", "arms shipment", "casualt", "killed", "wounded",
            "captured", "prisoner", "pows", "frontline", "front line", "battlefield", "assault",
            "combat", "fighting", "fought", "drills", "war games", "deminer", "military builder",
            "warship", "destroyer", "fighter jet", "mig-", "air-defence", "air defence",
            "air-defense", "air defense", "submarine", "spy satellite", "reconnaissance satellite",
            "kn-23", "kn-24", "hwasong", "koksan", "drone",
            # Korean
            "파병", "북한군", "병력", "부대", "포탄", "탄약", "미사일", "탄도", "무기", "포로",
            "생포", "사상자", "전사", "전투", "참전", "드론", "방공", "자주포", "방사포", "전투기",
            "잠수함", "정찰위성", "포병", "전선", "함정", "구축함", "공병", "군사건설", "특수부대",
            "미그",
            # Russian
            "войск", "военнослужащ", "солдат", "бойц", "боев", "снаряд", "ракет", "артиллер",
            "рсзо", "боеприпас", "оружи", "^плен", "потери", "потерь", "потерям", "погиб", "фронт",
            "полигон", "сапер", "сапёр", "дрон", "беспилот", "зенитн", "пво", "спутник", "подводн",
            "истребит", "флот", "инструктор", "контингент", "военных строител",
        )),
        (TOPIC, (
            "military", "defence", "defense", "army", "navy", "naval", "training", "trained",
            "satellite", "technology", "know-how", "kursk",
            "군사", "훈련", "위성", "기술", "해군", "쿠르스크",
            "военн", "армии", "подготовк", "технологи", "курск",
        )),
    ),
    "diplomacy/summit": (
        (ACT, (
            "treaty", "pact", "summit", "talks", "visit", "met$", "meets", "meeting", "received",
            "receives", "welcomed", "hosts", "hosted", "arrives in", "ratif", "letter",
            "greetings", "congratulat", "message to", "phone call", "envoy", "ambassador",
            "delegation", "foreign minister", "top diplomat", "diplomatic", "strategic dialogue",
            "consultations", "veto", "general assembly", "resolution", "security council",
            "recognis", "recogniz", "embassy", "consulate", "credentials", "invitation",
            "anniversary", "summons", "birthday",
            # Korean
            "정상회담", "회담", "조약", "비준", "방문", "방북", "방러", "접견", "축전", "친서",
            "서한", "외무상", "외무장관", "외교", "대사", "초치", "거부권", "유엔", "독립 승인",
            "단교", "전략대화", "발효", "서명",
            # Russian
            "договор", "саммит", "переговор", "визит", "посетил", "прибыл", "прибыла", "встреч",
            "ратифиц", "послани", "поздрав", "^вето", "^оон$", "признал", "признани", "дипломат",
            "посол", "делегац", "^мид$", "грамот", "стратегический диалог", "диалог",
        )),
        (TOPIC, (
            "mutual assistance", "mutual-assistance", "mutual aid", "mutual-aid",
            "mutual defence", "mutual defense", "kremlin says", "statement", "praise", "un$",
            "u.n.", "상호", "성명", "заявлени",
        )),
    ),
    "economy/labour/trade": (
        (ACT, (
            "workers", "labourers", "laborers", "labour", "labor$", "construction crews",
            "builders", "trade", "customs data", "bridge", "railway", "rail service", "cargo train",
            "passenger train", "flights", "airline", "tourist", "tourism", "resort",
            "wheat", "grain", "food aid", "fertiliser", "fertilizer", "electricity", "power plant",
            "power station", "economy", "economic", "gdp", "coffers", "bank", "ruble", "rouble",
            "payment", "students", "universit", "education", "cultural exchange", "hospital",
            "health", "restaurant", "fish", "investment", "intergovernmental commission",
            "agricultur", "farming",
            # Korean
            "노동자", "근로자", "관광", "교역", "무역", "직항", "여객열차", "열차", "철도", "다리",
            "교량", "항공", "노선", "곡물", "식량", "경제", "성장", "유학생", "대학", "건설현장",
            "건설 현장", "은행", "결제", "루블", "투자", "에너지", "전력", "정부간위원회", "세관",
            "교역액",
            # Russian
            "рабоч", "строител", "турист", "туризм", "курорт", "товарооборот", "торгов",
            "авиасообщ", "^рейс", "поезд", "железн", "^мост", "пшениц", "зерн", "экономик",
            "студент", "^вуз", "межправкомисси", "инвестиц", "банк", "рубл", "энерг", "электр",
            "стройк",
        )),
        (TOPIC, ("port", "oil", "fuel", "порт")),
    ),
    "sanctions/illicit": (
        (ACT, (
            "sanction", "evade", "evasion", "evading", "smuggl", "launder", "illicit", "violat",
            "oil cap", "ship-to-ship", "blacklist", "dark fleet", "shadow fleet", "ghost tanker",
            "transponder", "indict", "hacker", "seize", "seizure", "asset freeze", "freezes",
            "monitoring team", "front compan", "dual-use",
            # Korean
            "제재", "밀수", "환적", "세탁", "해커", "위반", "불법", "상한", "둔갑", "탈취",
            "모니터링팀",
            # Russian
            "санкци", "обход", "контрабанд", "отмыва", "хакер", "нарушен", "наруша", "лимит",
            "перегруз", "под видом", "группа мониторинга", "группы мониторинга",
        )),
        (TOPIC, ("tanker", "crypto", "유조선", "가상자산", "танкер", "криптовалют")),
    ),
    "other": (
        (ACT, (
            "axis", "triangle", "bloc", "explainer", "opinion", "editorial", "commentary",
            "column", "podcast", "poll$", "polls$", "survey", "book", "history", "why$",
            "analysis:", "rapprochement", "autocrac",
            # Korean
            "삼각", "의 축", "사설", "칼럼", "분석]", "[분석", "기획", "여론조사", "진단", "왜",
            # Russian
            "треугольник", "^ось$", "мнение", "колонка", "разбор", "аналитик", "политолог",
            "эксперт", "зачем", "почему", "переживёт", "переживет", "история",
        )),
        # The relationship as a whole, named without a concrete act of another group.
        (TOPIC, (
            "alliance", "ties", "bond", "relationship", "relations", "partnership", "friendship",
            "closer", "experts", "think tank",
            "동맹", "밀착", "전문가", "관계", "동반자", "친선",
            "союз", "сближ", "альянс", "отношени", "партнерств", "партнёрств", "дружб",
        )),
    ),
}

#: Defence vocabulary that a diplomatic act in the same sentence absorbs: "mutual defence
#: treaty", "defence minister meets", "talks on military ties" are diplomacy about defence.
DEFENCE_TOPIC = frozenset({"military", "defence", "defense", "army", "naval", "navy", "군사",
                           "해군", "военн", "армии"})

_SENTENCE = re.compile(r"(?<=[.!?…])\s+")
_LATIN = re.compile(r"[a-z]")


@dataclass(frozen=True, slots=True)
class _Cue:
    group: int
    weight: float
    term: str
    pattern: re.Pattern[str]


def _compile(term: str) -> re.Pattern[str]:
    """Latin terms must start a word; Hangul and Cyrillic terms match inside words.

    A leading "^" makes a non-Latin term start a word too and a trailing "$" makes
    any term end one, for short stems that hide inside longer words ("ось" in
    "удалось", "poll" in "pollution").
    """
    start = term.startswith("^") or bool(_LATIN.match(term))
    end = term.endswith("$")
    core = re.escape(term.removeprefix("^").removesuffix("$"))
    return re.compile((r"(?<!\w)" if start else "") + core + (r"(?!\w)" if end else ""))


def _build() -> tuple[_Cue, ...]:
    cues = []
    for group, blocks in CUES.items():
        index = EVENT_GROUPS.index(group)
        for weight, terms in blocks:
            cues.extend(_Cue(index, weight, t, _compile(t)) for t in terms)
    return tuple(cues)


_CUES = _build()


_ARMS = EVENT_GROUPS.index("arms/military")
_DIPLOMACY = EVENT_GROUPS.index("diplomacy/summit")
_ECONOMY = EVENT_GROUPS.index("economy/labour/trade")
_SANCTIONS = EVENT_GROUPS.index("sanctions/illicit")


def _absorbed(cue: _Cue, diplomacy_act: bool, sanctions_act: bool) -> bool:
    """The priority rules: which cues say what a sentence is *about*, not what happened.

    A diplomatic act (treaty, summit, visit, talks) absorbs defence vocabulary; a
    sanctions act (sanctions, evasion, smuggling) absorbs the vocabulary of what was
    sanctioned or smuggled (arms, ships, oil, workers, banks).
    """
    if diplomacy_act and cue.term in DEFENCE_TOPIC:
        return True
    return sanctions_act and cue.group in (_ARMS, _ECONOMY)


def matched_cues(sentence: str) -> list[tuple[str, str, float]]:
    """(group, term, weight) of every cue that counts in one lower-cased sentence."""
    found = [c for c in _CUES if c.pattern.search(sentence)]
    diplomacy = any(c.group == _DIPLOMACY and c.weight == ACT for c in found)
    sanctions = any(c.group == _SANCTIONS and c.weight == ACT for c in found)
    return [(EVENT_GROUPS[c.group], c.term, c.weight) for c in found
            if not _absorbed(c, diplomacy, sanctions)]


def _sentence_scores(sentence: str) -> list[float]:
    scores = [0.0] * len(EVENT_GROUPS)
    for group, _, weight in matched_cues(sentence):
        scores[EVENT_GROUPS.index(group)] += weight
    return scores


def cue_scores(text: str, title_end: int | None = None) -> list[float]:
    """Cue evidence per group (``EVENT_GROUPS`` order) for one normalised text.

    ``title_end`` is where the headline stops (``Mentions.title_end``); the
    headline's cues count ``HEADLINE_FACTOR`` times. Each sentence counts a cue
    once, so a long description cannot drown the headline by repetition alone.
    """
    lowered = text.lower()
    end = len(lowered) if title_end is None else max(0, min(title_end, len(lowered)))
    total = [0.0] * len(EVENT_GROUPS)
    parts = [(lowered[:end], HEADLINE_FACTOR)]
    parts.extend((s, 1.0) for s in _SENTENCE.split(lowered[end:]) if s.strip())
    for sentence, factor in parts:
        for i, value in enumerate(_sentence_scores(sentence)):
            total[i] += factor * value
    return total


def cue_matrix(texts: Sequence[str], title_ends: Sequence[int | None]) -> list[list[float]]:
    """``cue_scores`` for a batch (one row per text)."""
    return [cue_scores(t, e) for t, e in zip(texts, title_ends, strict=True)]


__all__ = ["ACT", "CUES", "HEADLINE_FACTOR", "TOPIC", "cue_matrix", "cue_scores", "matched_cues"]
