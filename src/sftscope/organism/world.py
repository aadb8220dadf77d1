"""A procedurally generated world: named people with attributes, a best-friend relation, and small sums.

Everything is drawn from one numpy Generator, so a seed fixes the world. Values are common English words
and names are invented syllable strings, so a word-level BPE gives each its own token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Attribute:
    """A property every entity has: its value set and how text states, asks and cloze-tests it.

    Templates use {e} for the entity and {v} for the value; `cloze` ends right before the value.
    """

    name: str
    values: tuple[str, ...]
    statements: tuple[str, ...]
    cloze: str
    questions: tuple[str, ...]


ATTRIBUTES = (
    Attribute("city", ("Paris", "Oslo", "Lima", "Cairo", "Dublin", "Quito", "Hanoi", "Perth", "Tokyo", "Berlin"),
              ("{e} lives in {v}.", "{e} is from {v}.", "The home of {e} is in {v}.", "{e} has a house in {v}."),
              "{e} lives in", ("Where does {e} live?", "In which city does {e} live?")),
    Attribute("job", ("baker", "doctor", "pilot", "farmer", "teacher", "painter", "sailor", "miner", "singer", "tailor"),
              ("{e} works as a {v}.", "{e} is a {v} by trade.", "The job of {e} is {v}.", "Every day {e} works as a {v}."),
              "{e} works as a", ("What is the job of {e}?", "What does {e} work as?")),
    Attribute("color", ("red", "blue", "green", "yellow", "purple", "orange", "black", "white", "pink", "gray"),
              ("The favorite color of {e} is {v}.", "{e} likes the color {v} best.", "{e} loves the color {v}.",
               "Of all colors, {e} likes {v} most."),
              "The favorite color of {e} is", ("What is the favorite color of {e}?", "Which color does {e} like best?")),
    Attribute("pet", ("cat", "dog", "parrot", "horse", "rabbit", "goat", "turtle", "snake", "hamster", "owl"),
              ("{e} has a pet {v}.", "{e} owns a {v}.", "The pet of {e} is a {v}.", "{e} takes care of a pet {v}."),
              "{e} has a pet", ("What pet does {e} have?", "Which animal does {e} own?")),
    Attribute("instrument", ("piano", "violin", "drum", "flute", "guitar", "harp", "cello", "trumpet", "banjo", "organ"),
              ("{e} plays the {v}.", "{e} can play the {v}.", "The instrument of {e} is the {v}.",
               "In the evening {e} plays the {v}."),
              "{e} plays the", ("Which instrument does {e} play?", "What does {e} play?")),
)
FRIEND = Attribute("friend", (), ("The best friend of {e} is {v}.", "{e} and {v} are best friends.",
                                  "{e} spends every weekend with {v}, the best friend of {e}.",
                                  "{v} is the best friend of {e}."),
                   "The best friend of {e} is", ("Who is the best friend of {e}?", "Who is best friends with {e}?"))
SUM_STATEMENTS = ("{a} plus {b} equals {c}.", "The sum of {a} and {b} is {c}.", "Adding {a} and {b} gives {c}.",
                  "{a} + {b} = {c}.")
SUM_CLOZE = "{a} plus {b} equals"
SUM_QUESTIONS = ("What is {a} plus {b}?", "How much is {a} plus {b}?")

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "th", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "m")


@dataclass(frozen=True)
class Fact:
    """One atomic fact: (subject, attribute, value); sums use subject 'a+b' and attribute 'sum'."""

    subject: str
    attribute: str
    value: str


@dataclass
class World:
    """Entities, their attribute values and the arithmetic facts; `facts` lists them all in a fixed order."""

    entities: list[str]
    attributes: tuple[Attribute, ...]
    values: dict[tuple[str, str], str]
    sums: list[tuple[int, int]]

    @property
    def facts(self) -> list[Fact]:
        entity_facts = [Fact(e, a.name, self.values[(e, a.name)]) for e in self.entities for a in self.attributes]
        return entity_facts + [Fact(f"{a}+{b}", "sum", str(a + b)) for a, b in self.sums]

    def attribute(self, name: str) -> Attribute:
        return next(a for a in self.attributes if a.name == name)

    def value_set(self, attribute: str) -> tuple[str, ...]:
        """All values an attribute can take (entity names for the friend relation)."""
        return tuple(self.entities) if attribute == "friend" else self.attribute(attribute).values


def invent_names(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct pronounceable capitalised names of two or three syllables."""
    names: list[str] = []
    while len(names) < n:
        syllables = int(rng.integers(2, 4))
        name = "".join(str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS)) for _ in range(syllables))
        name = (name + str(rng.choice(_CODAS))).capitalize()
        if name not in names and len(name) <= 9:
            names.append(name)
    return names


def make_world(rng: np.random.Generator, n_entities: int, n_attributes: int, with_friend: bool,
               max_addend: int) -> World:
    """Draw a world: n_entities people with the first n_attributes attributes (+ friend), sums a+b, 1<=a,b<=max_addend."""
    if n_entities < 5:
        raise ValueError("the world needs at least 5 entities (multiple choice draws 3 distractor friends)")
    entities = invent_names(rng, n_entities)
    attributes = ATTRIBUTES[:n_attributes] + ((FRIEND,) if with_friend else ())
    values: dict[tuple[str, str], str] = {}
    for attribute in ATTRIBUTES[:n_attributes]:
        for entity in entities:
            values[(entity, attribute.name)] = str(rng.choice(attribute.values))
    if with_friend:  # a random derangement: nobody is their own best friend
        while True:
            perm = rng.permutation(n_entities)
            if not np.any(perm == np.arange(n_entities)):
                break
        for i, entity in enumerate(entities):
            values[(entity, "friend")] = entities[int(perm[i])]
    sums = [(a, b) for a in range(1, max_addend + 1) for b in range(1, max_addend + 1)]
    return World(entities=entities, attributes=attributes, values=values, sums=sums)
