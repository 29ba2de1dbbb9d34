"""Write harness/data/open_prompts.jsonl: short open prompts (no reference answers) for the degeneration gates.

    python scripts/make_open_prompts.py [--per-family 6]

Degeneration (a repetition loop, an empty output, replacement characters) needs no reference answer, so this set
is cheap to make large: FAMILIES templates written for this project, each filled with seeded choices (one
random.Random per family, so families do not shift each other). A prompt's family is its id up to the last "-"
(families are the strata the degeneration rate's interval treats as fixed). The set spans prose, lists, dialogue,
instructions, code, markup, data formats and a few other languages, the places where a damaged model starts to
loop first. Nothing here depends on a model: the same file comes out on every machine.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "harness" / "data" / "open_prompts.jsonl"

ANIMALS = ["fox", "heron", "otter", "badger", "tortoise", "sparrow", "goat", "lynx", "beaver", "crab", "owl", "hare"]
PLACES = [
    "a lighthouse",
    "the old mill",
    "a mountain pass",
    "a harbour town",
    "the desert road",
    "a quiet library",
    "an orchard",
    "the night market",
    "a river island",
    "a snowed-in cabin",
    "the train yard",
    "a rooftop garden",
]
DISHES = [
    "lentil soup",
    "flatbread",
    "a tomato salad",
    "fried rice",
    "apple crumble",
    "pancakes",
    "a bean stew",
    "roast vegetables",
    "a simple omelette",
    "rice pudding",
    "garlic noodles",
    "a cucumber pickle",
]
TASKS = [
    "fix a squeaky door",
    "plant a herb garden",
    "clean a bicycle chain",
    "wrap a present",
    "start a compost heap",
    "sharpen a pencil with a knife",
    "pack for a weekend trip",
    "organise a bookshelf",
    "repot a plant",
    "make a paper boat",
    "patch a jacket",
    "tune a guitar",
]
TOPICS = [
    "rain",
    "the moon",
    "a busy kitchen",
    "old maps",
    "winter trees",
    "the sea at dawn",
    "a city bus",
    "forgotten keys",
    "a long walk",
    "harvest time",
    "a lantern",
    "the first snow",
]
THINGS = [
    "fruits",
    "tools",
    "colours",
    "musical instruments",
    "board games",
    "kitchen utensils",
    "rivers",
    "kinds of cloud",
    "garden birds",
    "vegetables",
    "sports",
    "fabrics",
]
NAMES = ["Mara", "Tomas", "Ines", "Kofi", "Lena", "Ravi", "Yuki", "Omar", "Sofia", "Jonas", "Amina", "Pavel"]
FUNCS = [
    "count_vowels",
    "is_palindrome",
    "merge_sorted",
    "flatten",
    "chunk_list",
    "word_frequencies",
    "clamp",
    "rolling_mean",
    "dedupe",
    "parse_date",
    "to_snake_case",
    "median",
]
SUBJECTS = [
    "photosynthesis",
    "tides",
    "rainbows",
    "magnets",
    "volcanoes",
    "echoes",
    "seasons",
    "yeast",
    "rust",
    "static electricity",
    "sound",
    "erosion",
]
TABLES = [
    "orders",
    "customers",
    "books",
    "trips",
    "sensors",
    "invoices",
    "students",
    "products",
    "flights",
    "loans",
    "recipes",
    "tickets",
]
CITIES = [
    "Lisbon",
    "Kyoto",
    "Nairobi",
    "Quebec",
    "Tallinn",
    "Cusco",
    "Hobart",
    "Bergen",
    "Porto",
    "Hanoi",
    "Valparaiso",
    "Krakow",
]

# family -> (template, {field: choices}); every template is this project's own wording
FAMILIES: dict[str, tuple[str, dict]] = {
    "story": ("Once upon a time, a {a} who lived near {p}", {"a": ANIMALS, "p": PLACES}),
    "story2": ("The storm had passed, and {n} stepped outside to find", {"n": NAMES}),
    "fable": ("This is the tale of the {a} and the {b}.", {"a": ANIMALS, "b": ANIMALS}),
    "recipe": ("Here is a simple recipe for {d}:\n", {"d": DISHES}),
    "howto": ("How to {t}, step by step:\n1.", {"t": TASKS}),
    "tips": ("A few tips for anyone who wants to {t}:", {"t": TASKS}),
    "poem": ("A short poem about {t}:\n", {"t": TOPICS}),
    "haiku": ("Three lines on {t}:\n", {"t": TOPICS}),
    "list": ("Here are some {x}:\n-", {"x": THINGS}),
    "list2": ("My favourite {x}, in no particular order:", {"x": THINGS}),
    "letter": ("Dear {n},\n\nThank you for", {"n": NAMES}),
    "email": ("Subject: Meeting about the {x} project\n\nHi {n},", {"x": TABLES, "n": NAMES}),
    "diary": ("Diary, day {k}. Today at {p} I", {"k": list(range(2, 40)), "p": PLACES}),
    "dialogue": ("{n}: Have you seen my notebook?\n{m}:", {"n": NAMES, "m": NAMES}),
    "chat": ("User: Can you explain {s} in simple words?\nAssistant:", {"s": SUBJECTS}),
    "explain": ("In simple terms, {s} happens because", {"s": SUBJECTS}),
    "science": ("Scientists study {s} by", {"s": SUBJECTS}),
    "travel": ("A day in {c}: start in the morning by", {"c": CITIES}),
    "guide": ("If you visit {c}, do not miss", {"c": CITIES}),
    "weather": ("Weather report for {c}: this afternoon", {"c": CITIES}),
    "news": ("Local news: a {a} was seen near {p} this morning, and", {"a": ANIMALS, "p": PLACES}),
    "review": ("Review: the {d} at the corner cafe was", {"d": DISHES}),
    "product": ("Product description: a sturdy set of {x} that", {"x": THINGS}),
    "ad": ("Looking for {x}? Our shop has", {"x": THINGS}),
    "faq": ("Frequently asked questions about {s}\n\nQ:", {"s": SUBJECTS}),
    "quiz": ("Quiz night, round {k}. First question:", {"k": list(range(1, 12))}),
    "lesson": ("Lesson plan: teaching children about {s}.\nGoal:", {"s": SUBJECTS}),
    "notes": ("Meeting notes ({x} team)\n- Attendees: {n}, {m}\n-", {"x": TABLES, "n": NAMES, "m": NAMES}),
    "todo": ("To do this week:\n[ ] {t}\n[ ]", {"t": TASKS}),
    "shopping": ("Shopping list for {d}:\n-", {"d": DISHES}),
    "python": ("def {f}(", {"f": FUNCS}),
    "pydoc": ('def {f}(values):\n    """', {"f": FUNCS}),
    "pyclass": ("class {n}Counter:\n    def __init__(self", {"n": NAMES}),
    "sql": ("SELECT * FROM {t} WHERE", {"t": TABLES}),
    "sql2": ("-- total per month from the {t} table\nSELECT", {"t": TABLES}),
    "shell": ("$ cd {t}\n$ ls\n", {"t": TABLES}),
    "gitlog": ("commit message: Fix {f} for empty input\n\n", {"f": FUNCS}),
    "bugreport": ("Bug report: {f} returns the wrong value when", {"f": FUNCS}),
    "json": ('{{"name": "{n}", "city": "{c}", ', {"n": NAMES, "c": CITIES}),
    "yaml": ("service:\n  name: {t}-api\n  ", {"t": TABLES}),
    "csv": ("id,name,city\n1,{n},{c}\n2,", {"n": NAMES, "c": CITIES}),
    "html": ("<ul>\n  <li>{x}", {"x": THINGS}),
    "markdown": ("# Notes on {s}\n\n## Overview\n", {"s": SUBJECTS}),
    "table": ("| item | count |\n|---|---|\n| {x} |", {"x": THINGS}),
    "log": ("2024-05-0{k} 10:00:01 INFO {t} job started\n2024-05-0{k}", {"k": list(range(1, 10)), "t": TABLES}),
    "french": ("Il était une fois un {a} qui", {"a": ["renard", "hibou", "lièvre", "castor", "chat", "loup"]}),
    "spanish": ("Mi ciudad favorita es {c} porque", {"c": CITIES}),
    "german": ("Heute morgen habe ich {d} gekocht und", {"d": ["Suppe", "Reis", "Kuchen", "Nudeln", "Eier", "Brot"]}),
    "japanese": ("{t}について短い文章を書きます。", {"t": ["雨", "月", "海", "冬", "朝ごはん", "図書館"]}),
    "math": ("A train leaves {c} at noon travelling at {k}0 km per hour.", {"c": CITIES, "k": list(range(3, 13))}),
    "compare": ("The main difference between {a} and {b} is", {"a": THINGS, "b": THINGS}),
    "opinion": (
        "I think the best way to spend a {d} is",
        {"d": ["Sunday", "rainy day", "holiday", "long evening", "snowy morning", "summer night"]},
    ),
}


def make(per_family: int) -> list[dict]:
    rows = []
    for fam, (template, fields) in FAMILIES.items():
        rng = random.Random(f"open-{fam}")
        seen = []
        tries = 0
        while len(seen) < per_family and tries < 200:
            tries += 1
            text = template.format(**{k: rng.choice(v) for k, v in fields.items()})
            if text not in seen:
                seen.append(text)
        for i, text in enumerate(seen):
            rows.append({"id": f"{fam}-{i:02d}", "prompt": text})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-family", type=int, default=6, help="prompts per family (at most the distinct fillings)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    rows = make(a.per_family)
    Path(a.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    fams = {r["id"].rsplit("-", 1)[0] for r in rows}
    print(f"wrote {len(rows)} prompts in {len(fams)} families to {a.out}")


if __name__ == "__main__":
    main()
