"""Facts that changed over time, and the questions that ask for them, for the recency and diversity
evaluation. The facts are duplicate_pairs.py's templates: each of its four values is one version of
the fact, stored days apart, and the newest has its reworded, restated and retyped twins
(near-duplicates)."""

from __future__ import annotations

from dataclasses import dataclass

from duplicate_pairs import ROUNDS, TEMPLATES, pairs

# The question a user asks about each template's fact, keyed by the template's note.
QUESTIONS = {
    "The team standup moved to {v}.": "when is the team standup",
    "The office wifi password is {v}.": "what is the wifi password in the office",
    "My sister is allergic to {v}.": "what is my sister allergic to",
    "The quarterly report is due on {v}.": "when is the quarterly report due",
    "Anna's phone number is {v}.": "how do I call Anna",
    "The production database runs on {v}.": "which database does production use",
    "The car's next service is at {v} kilometres.": "when does the car need its next service",
    "The project deadline is {v}.": "when is the project deadline",
    "Our rent goes up to {v} euros in January.": "how much rent do we pay from January",
    "The cat gets fed at {v}.": "when does the cat get fed",
    "The API rate limit is {v} requests per minute.": "what is the API rate limit",
    "Lukas prefers {v} for team lunches.": "what food does Lukas like for team lunch",
    "The backup job runs every night at {v}.": "when does the nightly backup run",
    "The conference takes place in {v}.": "where is the conference",
    "Our flight to Berlin leaves from gate {v}.": "which gate does the Berlin flight leave from",
    "The kitchen tap leaks when {v}.": "when does the kitchen tap leak",
    "Clara's birthday is on {v}.": "when is Clara's birthday",
    "The build fails because of {v}.": "why does the build fail",
    "The gym is closed on {v}.": "when is the gym closed",
    "I keep the spare house key {v}.": "where is the spare house key",
    "Our support hotline is open until {v}.": "how late is the support hotline open",
    "The monthly budget for groceries is {v} euros.": "what is our grocery budget",
    "The invoice from Baltic Steel is {v}.": "what is the status of the Baltic Steel invoice",
    "The new laptop uses {v} for the screen.": "what screen does the new laptop have",
}
# Days since each version was stored, oldest first: the last is the fact as it is now.
AGES = (40, 25, 12, 2)


@dataclass(frozen=True)
class Fact:
    question: str
    versions: list[str]  # oldest first: the last is the fact as it is now
    twins: list[str]  # the newest version reworded, restated and retyped: the same fact again


def facts() -> list[Fact]:
    """One fact per template, its values in an order that differs from template to template."""
    assert len(AGES) == ROUNDS and set(QUESTIONS) == {note for note, *_ in TEMPLATES}
    made = pairs()
    found = []
    for at, (note, *_) in enumerate(TEMPLATES):
        rounds = [(at + step) % ROUNDS for step in range(ROUNDS)]
        ours = [pair for pair in made if pair.template == at]
        versions = [next(pair.note for pair in ours if pair.round == r) for r in rounds]
        twins = [pair.text for pair in ours if pair.round == rounds[-1] and pair.same]
        found.append(Fact(QUESTIONS[note], versions, twins))
    return found
