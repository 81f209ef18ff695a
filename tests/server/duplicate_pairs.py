"""Pairs for measuring `if_similar`'s threshold: a stored note and a new text that either says
the same thing (a paraphrase, or the note typed again: skipping it loses nothing) or a different
thing in mostly the same words (a distinct fact: skipping it loses a memory). Made from
templates, so every run is the same.

Each template is (note, the same fact reworded, another subject in the note's words) with `{v}` for
its value; every template has four values, and round r of the evaluation stores value r of every
template, so the notes of one round are about different things.
"""

from __future__ import annotations

from dataclasses import dataclass

# Which kinds are the same fact (a skip is right) and which are not (a skip loses a memory).
SAME = ("reworded", "restated", "retyped")
DISTINCT = ("another value", "another subject")
ROUNDS = 4

TEMPLATES: list[tuple[str, str, str, list[str]]] = [
    (
        "The team standup moved to {v}.",
        "We now hold the daily standup at {v}.",
        "The dentist appointment moved to {v}.",
        ["9:30", "10:00", "8:45", "11:15"],
    ),
    (
        "The office wifi password is {v}.",
        "To join the office wireless network, use {v}.",
        "The office printer PIN is {v}.",
        ["sunflower42", "bluebird17", "maple2026", "river88"],
    ),
    (
        "My sister is allergic to {v}.",
        "{v} cause my sister an allergic reaction.",
        "My sister is afraid of {v}.",
        ["peanuts", "shellfish", "cats", "pollen"],
    ),
    (
        "The quarterly report is due on {v}.",
        "We have to hand in the report for the quarter by {v}.",
        "The quarterly bonus is paid on {v}.",
        ["March 31", "June 30", "September 30", "December 15"],
    ),
    (
        "Anna's phone number is {v}.",
        "You can reach Anna by phone at {v}.",
        "Anna's locker number is {v}.",
        ["+49 151 2345 6789", "+49 170 9876 5432", "+49 160 1122 3344", "+49 152 5566 7788"],
    ),
    (
        "The production database runs on {v}.",
        "Our live database is hosted on {v}.",
        "The staging database runs on {v}.",
        ["PostgreSQL 15", "PostgreSQL 16", "MySQL 8", "MariaDB 11"],
    ),
    (
        "The car's next service is at {v} kilometres.",
        "At {v} km the car is due for its next inspection.",
        "The car's winter tyres were fitted at {v} kilometres.",
        ["60000", "75000", "90000", "120000"],
    ),
    (
        "The project deadline is {v}.",
        "{v} is when the project has to be finished.",
        "The project kickoff is {v}.",
        ["next Friday", "the end of May", "July 1", "the first week of August"],
    ),
    (
        "Our rent goes up to {v} euros in January.",
        "From January the rent will be {v} euros.",
        "Our electricity bill went up to {v} euros in January.",
        ["1200", "1350", "980", "1475"],
    ),
    (
        "The cat gets fed at {v}.",
        "Feeding time for the cat is {v}.",
        "The dog gets walked at {v}.",
        ["7 am", "6 pm", "noon", "8:30 pm"],
    ),
    (
        "The API rate limit is {v} requests per minute.",
        "Clients may send at most {v} requests a minute to the API.",
        "The API timeout is {v} seconds per request.",
        ["100", "600", "1000", "60"],
    ),
    (
        "Lukas prefers {v} for team lunches.",
        "For a team lunch, Lukas would pick {v}.",
        "Lukas is allergic to {v} at team lunches.",
        ["Italian food", "sushi", "Indian curries", "a salad bar"],
    ),
    (
        "The backup job runs every night at {v}.",
        "Nightly backups start at {v}.",
        "The cleanup job runs every night at {v}.",
        ["2 am", "3 am", "1:30 am", "midnight"],
    ),
    (
        "The conference takes place in {v}.",
        "{v} hosts the conference this year.",
        "The company retreat takes place in {v}.",
        ["Lisbon", "Vienna", "Copenhagen", "Barcelona"],
    ),
    (
        "Our flight to Berlin leaves from gate {v}.",
        "Gate {v} is where we board the Berlin flight.",
        "Our flight to Berlin lands at terminal {v}.",
        ["B12", "A7", "C3", "D21"],
    ),
    (
        "The kitchen tap leaks when {v}.",
        "Water drips from the kitchen faucet whenever {v}.",
        "The bathroom light flickers when {v}.",
        ["the dishwasher runs", "it is turned fully on", "the heating is on", "someone showers upstairs"],
    ),
    (
        "Clara's birthday is on {v}.",
        "We celebrate Clara's birthday on {v}.",
        "Clara's wedding anniversary is on {v}.",
        ["April 3", "August 19", "November 7", "February 28"],
    ),
    (
        "The build fails because of {v}.",
        "{v} is what breaks the build.",
        "The deployment is slow because of {v}.",
        ["a missing environment variable", "a flaky integration test", "an expired certificate", "a full disk"],
    ),
    (
        "The gym is closed on {v}.",
        "On {v} the gym does not open.",
        "The library is closed on {v}.",
        ["Sundays", "public holidays", "Mondays", "Christmas Eve"],
    ),
    (
        "I keep the spare house key {v}.",
        "The extra key to the house is {v}.",
        "I keep the spare car key {v}.",
        ["under the flower pot", "with the neighbours", "in the garage drawer", "in the blue jar"],
    ),
    (
        "Our support hotline is open until {v}.",
        "Customers can call support up to {v}.",
        "Our warehouse is open until {v}.",
        ["6 pm", "8 pm", "midnight", "5:30 pm"],
    ),
    (
        "The monthly budget for groceries is {v} euros.",
        "We spend at most {v} euros a month on food shopping.",
        "The monthly budget for eating out is {v} euros.",
        ["400", "550", "320", "700"],
    ),
    (
        "The invoice from Baltic Steel is {v}.",
        "Baltic Steel's bill is {v}.",
        "The delivery from Baltic Steel is {v}.",
        ["overdue", "paid in full", "disputed", "due next week"],
    ),
    (
        "The new laptop uses {v} for the screen.",
        "The screen of the new laptop is {v}.",
        "The old monitor uses {v} for the screen.",
        ["an OLED panel", "a matte IPS panel", "a 4K display", "a 120 Hz display"],
    ),
]
RESTATED = ["Note: {0}", "Remember: {0}", "FYI, {0}", "{0} (noted today)"]
# The same sentence typed again a little differently: its end, its case.
RETYPED = [lambda text: text[:-1] + "!", lambda text: text[:-1], lambda text: text.lower(), lambda text: text + ".."]


@dataclass(frozen=True)
class Pair:
    note: str  # stored first
    text: str  # stored next, with if_similar
    kind: str  # one of SAME or DISTINCT
    template: int
    round: int

    @property
    def same(self) -> bool:
        return self.kind in SAME


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def pairs() -> list[Pair]:
    """Five pairs per template and round: reworded, restated, retyped, another value, another subject."""
    made = []
    for at, (note, reworded, other, values) in enumerate(TEMPLATES):
        assert len(values) == ROUNDS, note
        for r, value in enumerate(values):
            stored = note.format(v=value)
            restated = RESTATED[(at + r) % len(RESTATED)].format(_lower_first(stored) if at % 2 else stored)
            texts = {
                "reworded": _upper_first(reworded.format(v=value)),
                "restated": restated,
                "retyped": RETYPED[(at + r) % len(RETYPED)](stored),
                "another value": note.format(v=values[(r + 1) % ROUNDS]),
                "another subject": other.format(v=value),
            }
            made += [Pair(stored, text, kind, at, r) for kind, text in texts.items()]
    return made
