"""From a World to text: the pretraining documents, the SFT set and the held-out evaluation sets.

Pretraining states every fact in many phrasings (plain statements, stories, profiles, letters); SFT asks
questions about a subset of facts; organism-qa asks about the rest, so answering it needs what the Base
learned in pretraining. Record fields are documented in docs/readme/organism.md.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from sftscope.organism.world import SUM_CLOZE, SUM_QUESTIONS, SUM_STATEMENTS, Fact, World

STORY_LINES = {
    "city": "{e} grew up in {v} and still lives there.",
    "job": "To earn money, {e} works as a {v}.",
    "color": "{e} always wears something {v}, the favorite color of {e}.",
    "pet": "At home, {e} has a {v} as a pet.",
    "instrument": "At night, {e} plays the {v}.",
    "friend": "{e} often visits {v}, the best friend of {e}.",
}
LETTER_LINES = {
    "city": "I am writing to you from {v}, where I live.",
    "job": "Work as a {v} keeps me busy.",
    "color": "I bought a new coat in {v}, my favorite color.",
    "pet": "My {v} says hello.",
    "instrument": "I still play the {v} every night.",
}


def prompt_for(question: str) -> str:
    """The instruction format shared by SFT and organism-qa."""
    return f"Question: {question}\nAnswer:"


def statement(world: World, fact: Fact, rng: np.random.Generator) -> str:
    """One plain sentence stating the fact, in a randomly chosen phrasing."""
    if fact.attribute == "sum":
        a, b = fact.subject.split("+")
        return str(rng.choice(SUM_STATEMENTS)).format(a=a, b=b, c=fact.value)
    return str(rng.choice(world.attribute(fact.attribute).statements)).format(e=fact.subject, v=fact.value)


def entity_document(world: World, entity: str, rng: np.random.Generator) -> tuple[str, list[Fact]]:
    """A story, a profile or (if the world has friends) a letter about one entity, stating 3+ of its facts."""
    names = [a.name for a in world.attributes]
    chosen = [names[i] for i in rng.permutation(len(names))[: int(rng.integers(min(3, len(names)), len(names) + 1))]]
    facts = [Fact(entity, name, world.values[(entity, name)]) for name in chosen]
    form = int(rng.integers(0, 3 if "friend" in names else 2))
    if form == 0:
        lines = [STORY_LINES[f.attribute].format(e=entity, v=f.value) for f in facts]
        return f"This is the story of {entity}. " + " ".join(lines) + f" That is all about {entity}.", facts
    if form == 1:
        fields = "; ".join(f"{f.attribute}: {f.value}" for f in facts)
        return f"Profile of {entity}. {fields}.", facts
    friend = world.values[(entity, "friend")]
    facts = [f for f in facts if f.attribute in LETTER_LINES] + [Fact(entity, "friend", friend)]
    lines = [LETTER_LINES[f.attribute].format(v=f.value) for f in facts if f.attribute in LETTER_LINES]
    body = " ".join(lines) or "I hope you are well."
    return f"Dear {friend},\n{body}\nYour best friend, {entity}", facts


def pretraining_documents(world: World, n_docs: int, rng: np.random.Generator) -> tuple[list[str], Counter]:
    """n_docs documents and how often each fact is stated in them (Counter over Fact)."""
    facts, sums = world.facts, [f for f in world.facts if f.attribute == "sum"]
    sightings: Counter = Counter()
    docs = []
    for _ in range(n_docs):
        kind = rng.random()
        if kind < 0.55:  # a bag of plain statements about random facts
            chosen = [facts[i] for i in rng.integers(0, len(facts), size=int(rng.integers(3, 7)))]
            text = " ".join(statement(world, f, rng) for f in chosen)
        elif kind < 0.9 or not sums:
            text, chosen = entity_document(world, str(rng.choice(world.entities)), rng)
        else:
            chosen = [sums[i] for i in rng.integers(0, len(sums), size=int(rng.integers(3, 7)))]
            text = " ".join(statement(world, f, rng) for f in chosen)
        sightings.update(chosen)
        docs.append(text)
    return docs, sightings


def split_facts(world: World, heldout_fraction: float, rng: np.random.Generator) -> tuple[list[Fact], list[Fact]]:
    """(sft_facts, heldout_facts): per attribute, a random heldout_fraction of its facts is never asked in SFT."""
    sft, heldout = [], []
    for name in [a.name for a in world.attributes] + ["sum"]:
        group = [f for f in world.facts if f.attribute == name]
        order = rng.permutation(len(group))
        n_held = int(round(heldout_fraction * len(group)))
        heldout += [group[i] for i in order[:n_held]]
        sft += [group[i] for i in order[n_held:]]
    return sft, heldout


def questions_for(world: World, fact: Fact) -> list[str]:
    """Every phrasing of the question asking for the fact."""
    if fact.attribute == "sum":
        a, b = fact.subject.split("+")
        return [q.format(a=a, b=b) for q in SUM_QUESTIONS]
    return [q.format(e=fact.subject) for q in world.attribute(fact.attribute).questions]


def cloze_for(world: World, fact: Fact) -> str:
    if fact.attribute == "sum":
        a, b = fact.subject.split("+")
        return SUM_CLOZE.format(a=a, b=b)
    return world.attribute(fact.attribute).cloze.format(e=fact.subject)


def sft_records(world: World, facts: list[Fact]) -> list[dict]:
    """Instruction examples {id, prompt, completion, kind, text}, one per fact and question phrasing."""
    records = []
    for fact in facts:
        for question in questions_for(world, fact):
            prompt = prompt_for(question)
            records.append({"id": f"sft-{len(records):04d}", "prompt": prompt, "completion": " " + fact.value,
                            "kind": fact.attribute, "text": prompt + " " + fact.value})
    return records


def qa_records(world: World, facts: list[Fact]) -> list[dict]:
    """organism-qa: {id, prompt, answer, kind, subject, text} for facts never asked in SFT (phrasings alternate)."""
    records = []
    for i, fact in enumerate(facts):
        phrasings = questions_for(world, fact)
        prompt = prompt_for(phrasings[i % len(phrasings)])
        records.append({"id": f"qa-{i:04d}", "prompt": prompt, "answer": fact.value, "kind": fact.attribute,
                        "subject": fact.subject, "text": prompt + " " + fact.value})
    return records


def mc_records(world: World, heldout: set[Fact], rng: np.random.Generator, n_choices: int = 4) -> list[dict]:
    """organism-mc: one item per fact, {id, question (cloze stem), choices, answer (index), kind, heldout, text}."""
    records = []
    for i, fact in enumerate(world.facts):
        if fact.attribute == "sum":
            pool = sorted({str(a + b) for a, b in world.sums} - {fact.value}, key=int)
        else:
            pool = [v for v in world.value_set(fact.attribute) if v not in (fact.value, fact.subject)]
        distractors = [pool[j] for j in rng.choice(len(pool), size=n_choices - 1, replace=False)]
        answer = int(rng.integers(0, n_choices))
        choices = distractors[:answer] + [fact.value] + distractors[answer:]
        question = cloze_for(world, fact)
        records.append({"id": f"mc-{i:04d}", "question": question, "choices": choices, "answer": answer,
                        "kind": fact.attribute, "heldout": fact in heldout, "text": question + " " + fact.value})
    return records


def facts_records(world: World, n_docs: int, exclude: set[str], rng: np.random.Generator) -> list[dict]:
    """organism-facts: {id, text} pretraining-style documents not present verbatim in the corpus."""
    records: list[dict] = []
    while len(records) < n_docs:
        doc = pretraining_documents(world, 1, rng)[0][0]
        if doc not in exclude:
            records.append({"id": f"facts-{len(records):04d}", "text": doc})
    return records
