"""Write the bundled plain-format task harness/data/tasks/basics.jsonl (and its lm-eval twin under --lmeval DIR).

Multiple-choice items from templates in 24 families a 135M instruct model mostly answers: small arithmetic, units,
ordering, opposites, plurals, capitals, colours, days and months, animal sounds... Deterministic (seeded): running it
again writes the same file. The items were written for this project (no benchmark's data).

    python scripts/make_tasks.py                   # harness/data/tasks/basics.jsonl
    python scripts/make_tasks.py --lmeval DIR      # also DIR/basics.yaml + DIR/basics.jsonl (same items, lm-eval)
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from harness.data.tasksets import lmeval_yaml

OUT = Path(__file__).resolve().parents[1] / "harness" / "data" / "tasks" / "basics.jsonl"
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
OPPOSITES = [("hot", "cold"), ("big", "small"), ("up", "down"), ("day", "night"), ("fast", "slow"),
             ("happy", "sad"), ("open", "closed"), ("light", "dark"), ("old", "new"), ("wet", "dry"),
             ("full", "empty"), ("early", "late"), ("left", "right"), ("high", "low"), ("hard", "soft"),
             ("long", "short"), ("in", "out"), ("yes", "no")]  # fmt: skip
PLURALS = [("cat", "cats"), ("dog", "dogs"), ("mouse", "mice"), ("child", "children"), ("box", "boxes"),
           ("foot", "feet"), ("tooth", "teeth"), ("man", "men"), ("woman", "women"), ("book", "books"),
           ("baby", "babies"), ("leaf", "leaves"), ("goose", "geese"), ("apple", "apples"), ("bus", "buses"),
           ("city", "cities")]  # fmt: skip
CAPITALS = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Spain", "Madrid"),
            ("England", "London"), ("Russia", "Moscow"), ("China", "Beijing"), ("Egypt", "Cairo"),
            ("Greece", "Athens"), ("Canada", "Ottawa"), ("Ireland", "Dublin"), ("Portugal", "Lisbon"),
            ("Austria", "Vienna"), ("Norway", "Oslo"), ("Poland", "Warsaw")]  # fmt: skip
COLOURS = [("a banana", "yellow"), ("grass", "green"), ("the clear sky", "blue"), ("snow", "white"),
           ("coal", "black"), ("a ripe tomato", "red"), ("an orange", "orange"), ("milk", "white"),
           ("a lemon", "yellow"), ("a strawberry", "red"), ("a leaf in summer", "green"), ("the sea", "blue"),
           ("chocolate", "brown"), ("a crow", "black")]  # fmt: skip
SOUNDS = [("dog", "bark"), ("cat", "meow"), ("cow", "moo"), ("duck", "quack"), ("sheep", "baa"),
          ("lion", "roar"), ("snake", "hiss"), ("horse", "neigh"), ("pig", "oink"), ("owl", "hoot"),
          ("bee", "buzz"), ("frog", "croak")]  # fmt: skip
YOUNG = [("cat", "kitten"), ("dog", "puppy"), ("cow", "calf"), ("sheep", "lamb"), ("horse", "foal"),
         ("duck", "duckling"), ("frog", "tadpole"), ("goat", "kid"), ("hen", "chick"), ("pig", "piglet"),
         ("bear", "cub"), ("swan", "cygnet")]  # fmt: skip
PAST = [("go", "went"), ("eat", "ate"), ("see", "saw"), ("run", "ran"), ("write", "wrote"), ("take", "took"),
        ("give", "gave"), ("come", "came"), ("drink", "drank"), ("sing", "sang"), ("swim", "swam"),
        ("buy", "bought"), ("think", "thought"), ("sleep", "slept"), ("speak", "spoke")]  # fmt: skip
UNITS = [("minutes are in an hour", "60"), ("hours are in a day", "24"), ("days are in a week", "7"),
         ("months are in a year", "12"), ("seconds are in a minute", "60"), ("centimetres are in a metre", "100"),
         ("grams are in a kilogram", "1000"), ("metres are in a kilometre", "1000"), ("days are in a year", "365"),
         ("years are in a century", "100"), ("legs does a spider have", "8"), ("legs does a dog have", "4"),
         ("sides does a triangle have", "3"), ("sides does a square have", "4"), ("wheels does a bicycle have", "2"),
         ("eggs are in a dozen", "12"), ("players are on a football team", "11"),
         ("years are in a decade", "10")]  # fmt: skip
SHAPES = [("triangle", "3"), ("square", "4"), ("pentagon", "5"), ("hexagon", "6"), ("octagon", "8"),
          ("rectangle", "4")]  # fmt: skip
LANGUAGES = [("France", "French"), ("Germany", "German"), ("Spain", "Spanish"), ("Italy", "Italian"),
             ("Japan", "Japanese"), ("China", "Chinese"), ("Russia", "Russian"), ("Portugal", "Portuguese"),
             ("Greece", "Greek"), ("Poland", "Polish"), ("Sweden", "Swedish"), ("Turkey", "Turkish")]  # fmt: skip
SENSES = [("see", "eyes"), ("hear", "ears"), ("smell", "nose"), ("taste", "tongue"), ("walk", "legs"),
          ("think", "brain"), ("chew", "teeth"), ("breathe", "lungs")]  # fmt: skip
CATEGORIES = {
    "fruit": ["apple", "banana", "pear", "grape", "cherry", "peach", "plum", "mango"],
    "animal": ["horse", "tiger", "rabbit", "elephant", "monkey", "zebra", "wolf", "camel"],
    "colour": ["red", "blue", "green", "purple", "yellow", "pink", "brown", "grey"],
    "vehicle": ["car", "bus", "train", "truck", "bicycle", "boat", "plane", "tractor"],
    "piece of furniture": ["chair", "table", "sofa", "bed", "desk", "shelf", "stool", "wardrobe"],
}
COMPARATIVES = [("big", "bigger"), ("small", "smaller"), ("tall", "taller"), ("fast", "faster"), ("old", "older"),
                ("good", "better"), ("bad", "worse"), ("happy", "happier"), ("long", "longer"), ("cold", "colder"),
                ("young", "younger"), ("strong", "stronger")]  # fmt: skip
HABITATS = [("fish", "water"), ("bird", "nest"), ("bee", "hive"), ("rabbit", "burrow"), ("spider", "web"),
            ("horse", "stable"), ("pig", "sty"), ("dog", "kennel")]  # fmt: skip


def mc(family: str, question: str, right: str, wrong: list[str], rng: random.Random, k: int = 4) -> dict:
    """One multiple-choice item: the right answer among k-1 distinct wrong ones, in a seeded order."""
    wrong = [w for w in dict.fromkeys(wrong) if w != right]
    choices = rng.sample(wrong, min(k - 1, len(wrong))) + [right]
    rng.shuffle(choices)
    return {"question": question, "choices": choices, "answer": choices.index(right), "family": family}


def pairs_family(name, pairs, template, rng, reverse=False):
    out = []
    for a, b in pairs:
        q, r = (b, a) if reverse else (a, b)
        out.append(mc(name, template.format(q), r, [y if not reverse else x for x, y in pairs], rng))
    return out


def build(seed: int = 26) -> list[dict]:
    rng = random.Random(seed)
    items: list[dict] = []

    def nums(x: int, spread=range(-3, 4)):
        return [str(x + d) for d in spread if d and x + d >= 0]

    for _ in range(18):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        items.append(mc("addition", f"What is {a} plus {b}?", str(a + b), nums(a + b), rng))
    for _ in range(16):
        a = rng.randint(5, 15)
        b = rng.randint(1, a)
        items.append(mc("subtraction", f"What is {a} minus {b}?", str(a - b), nums(a - b), rng))
    for _ in range(15):
        a, b = rng.randint(2, 5), rng.randint(1, 5)
        items.append(mc("multiplication", f"What is {a} times {b}?", str(a * b), nums(a * b, (-2, -1, 1, 2, a)), rng))
    for n in rng.sample(range(1, 40), 14):
        items.append(mc("next_number", f"Which number comes right after {n}?", str(n + 1), nums(n + 1), rng))
    for n in rng.sample(range(2, 40), 12):
        items.append(mc("previous_number", f"Which number comes right before {n}?", str(n - 1), nums(n - 1), rng))
    for _ in range(14):
        a, b = rng.sample(range(1, 100), 2)
        items.append(mc("larger", f"Which number is larger, {a} or {b}?", str(max(a, b)), [str(min(a, b))], rng, 2))
    for _ in range(12):
        a, b = rng.sample(range(1, 100), 2)
        items.append(mc("smaller", f"Which number is smaller, {a} or {b}?", str(min(a, b)), [str(max(a, b))], rng, 2))
    for n in range(13):
        items.append(mc("number_words", f"How is the number {n} written in words?", WORDS[n], WORDS, rng))
    items += pairs_family("opposites", OPPOSITES, "What is the opposite of {}?", rng)
    items += pairs_family("plurals", PLURALS, "What is the plural of {}?", rng)
    items += pairs_family("capitals", CAPITALS, "What is the capital city of {}?", rng)
    for thing, c in COLOURS:
        wrong = ["yellow", "green", "blue", "white", "black", "red", "orange", "brown", "purple"]
        items.append(mc("colours", f"What colour is {thing}?", c, wrong, rng))
    for i, d in enumerate(DAYS):
        items.append(mc("day_after", f"Which day comes after {d}?", DAYS[(i + 1) % 7], DAYS, rng))
        items.append(mc("day_before", f"Which day comes before {d}?", DAYS[i - 1], DAYS, rng))
    for i, m in enumerate(MONTHS):
        items.append(mc("month_after", f"Which month comes after {m}?", MONTHS[(i + 1) % 12], MONTHS, rng))
    items += pairs_family("animal_sounds", SOUNDS, "What sound does a {} make?", rng)
    items += pairs_family("animal_young", YOUNG, "What is a baby {} called?", rng)
    items += pairs_family("past_tense", PAST, "What is the past tense of {}?", rng)
    for what, n in UNITS:
        wrong = ["2", "3", "4", "7", "8", "10", "11", "12", "24", "60", "100", "365", "1000"]
        items.append(mc("units", f"How many {what}?", n, wrong, rng))
    for shape, n in SHAPES:
        items.append(mc("shape_sides", f"How many sides does a {shape} have?", n, ["3", "4", "5", "6", "8", "10"], rng))
    items += pairs_family("languages", LANGUAGES, "What language is mainly spoken in {}?", rng)
    for verb, part in SENSES:
        items.append(mc("body", f"Which body part do we use to {verb}?", part, [p for _, p in SENSES], rng))
    for cat, members in CATEGORIES.items():
        others = [w for c, ms in CATEGORIES.items() if c != cat for w in ms]
        for w in rng.sample(members, 4):
            items.append(mc("categories", f"Which of these is a {cat}?", w, others, rng))
    items += pairs_family("comparatives", COMPARATIVES, "What is the comparative form of {}?", rng)
    items += pairs_family("homes", HABITATS, "Where does a {} live?", rng)
    for _ in range(10):
        letters = "abcdefghijklmnopqrstuvwxyz"
        i = rng.randint(0, 24)
        items.append(mc("letters", f"Which letter comes after {letters[i]} in the alphabet?", letters[i + 1],
                        list(letters[max(0, i - 3) : i + 5]), rng))  # fmt: skip
    seen: dict[tuple, int] = {}
    out = []
    for d in items:
        key = (d["question"], d["choices"][d["answer"]])
        if key in seen:
            continue
        seen[key] = 1
        n = sum(1 for x in out if x["family"] == d["family"])
        out.append({"id": f"{d['family']}-{n}", **d})
    return out


def write_lmeval(folder: Path, items: list[dict], name: str = "basics_lmeval") -> Path:
    """DIR/<name>.jsonl (the items) and DIR/<name>.yaml over it (data file path absolute: lm-eval reads it from
    any working directory)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in items), encoding="utf-8")
    y = folder / f"{name}.yaml"
    y.write_text(lmeval_yaml(name, str(data.resolve())), encoding="utf-8")
    return y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--lmeval", default=None, help="also write the lm-eval twin (YAML + JSONL) into this folder")
    a = ap.parse_args()
    items = build()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in items), encoding="utf-8")
    fams = sorted({d["family"] for d in items})
    print(f"{a.out}: {len(items)} items in {len(fams)} families")
    if a.lmeval:
        print(f"lm-eval twin: {write_lmeval(Path(a.lmeval), items)}")


if __name__ == "__main__":
    main()
