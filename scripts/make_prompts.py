"""Write harness/data/prompts.jsonl: project-written prompt candidates, keeping those with
references only where they are stable-correct under the default model's baseline.

Run when the prompt families change (see "Last run" below for the time it takes on 2 CPU cores):

    python scripts/make_prompts.py [--raw /tmp/prompt-generations.json]

Every candidate is written by this project, most from templates filled by seeded random choices
(one random.Random per family, so that families do not shift each other). A prompt's family is its
id up to the last "-" (the harness resamples prompts by family); the file groups prompts by family.

Stable-correct: the greedy 16-token continuation of smollm2-135m (batched, bos="auto") is correct
(harness.generation.is_correct) on the prompt and on each of its three neutral variants
(harness.behaviour.prompt_variants), and no variant's answer rests on a near-tie: on the tokens
that decide correctness, the greedy token leads the runner-up by at least MIN_MARGIN logits in an
unbatched forward pass, so batch composition or padding cannot flip the answer. Families with
fewer than MIN_FAMILY survivors are dropped; larger ones are thinned (seeded) to a common cap, so
that about TARGET_TOTAL prompts remain and no family holds more than 20% of them. The 35 open
prompts (no references; the first 12 marked "long") follow, unchanged.

Last run: FILL
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIN_MARGIN = 0.5  # logits between the greedy token and the runner-up, on the answer's tokens
TARGET_TOTAL = 420  # reference prompts kept at most
MAX_SHARE = 0.20  # of the kept reference prompts, per family
MIN_FAMILY = 12  # the 48-prompt smoke subset (every ~10th line) must hit every family

CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
            ("Japan", "Tokyo"), ("England", "London"), ("Russia", "Moscow"), ("Egypt", "Cairo"),
            ("China", "Beijing"), ("Canada", "Ottawa"), ("Portugal", "Lisbon"), ("Greece", "Athens"),
            ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Norway", "Oslo"), ("Sweden", "Stockholm"),
            ("Poland", "Warsaw"), ("Kenya", "Nairobi"), ("Thailand", "Bangkok"), ("Cuba", "Havana"),
            ("Peru", "Lima"), ("Hungary", "Budapest"), ("Denmark", "Copenhagen"), ("Finland", "Helsinki")]
FACTS = [
    ("The largest planet in the solar system is", ["Jupiter"]),
    ("The chemical symbol for gold is", ["Au"]),
    ("The chemical symbol for water is", ["H2O"]),
    ("The opposite of hot is", ["cold"]),
    ("The opposite of up is", ["down"]),
    ("The opposite of day is", ["night"]),
    ("The color of the sky on a clear day is", ["blue"]),
    ("The color of grass is", ["green"]),
    ("A baby cat is called a", ["kitten"]),
    ("A baby dog is called a", ["puppy"]),
    ("The first month of the year is", ["January"]),
    ("The day after Monday is", ["Tuesday"]),
    ("The planet we live on is called", ["Earth"]),
    ("The closest star to the Earth is the", ["Sun"]),
    ("Bees make", ["honey"]),
    ("Cows give us", ["milk"]),
    ("The author of Romeo and Juliet is William", ["Shakespeare"]),
    ("The Eiffel Tower is in the city of", ["Paris"]),
    ("The Statue of Liberty is in New", ["York"]),
    ("Water is made of hydrogen and", ["oxygen"]),
    ("The freezing point of water in degrees Celsius is", ["0", "zero"]),
    ("There are seven days in a", ["week"]),
    ("There are twelve months in a", ["year"]),
    ("Ice is frozen", ["water"]),
    ("The currency of Japan is the", ["yen"]),
    ("The tallest animal in the world is the", ["giraffe"]),
    ("The fastest land animal is the", ["cheetah"]),
    ("The largest ocean on Earth is the", ["Pacific"]),
    ("The longest river in Africa is the", ["Nile"]),
    ("Plants make food from sunlight through a process called", ["photosynthesis"]),
]
SEQUENCES = [
    ("1, 2, 3, 4, 5,", ["6"]), ("2, 4, 6, 8,", ["10"]), ("10, 20, 30, 40,", ["50"]),
    ("5, 10, 15, 20,", ["25"]), ("1, 3, 5, 7,", ["9"]), ("100, 200, 300,", ["400"]),
    ("Monday, Tuesday, Wednesday,", ["Thursday"]), ("January, February, March,", ["April"]),
    ("a, b, c, d,", ["e"]), ("A, B, C, D, E,", ["F"]), ("one, two, three, four,", ["five"]),
    ("first, second, third,", ["fourth"]), ("3, 6, 9, 12,", ["15"]), ("11, 12, 13, 14,", ["15"]),
    ("spring, summer, autumn,", ["winter"]), ("7, 8, 9,", ["10"]),
    ("Sunday, Monday, Tuesday,", ["Wednesday"]), ("June, July, August,", ["September"]),
]
WORDS = ["apple", "window", "river", "lantern", "pencil", "garden", "violin", "rocket", "candle",
         "forest", "button", "mirror", "tiger", "ocean", "ladder", "basket"]
ARITH = [(a, b) for a, b in [(2, 3), (4, 5), (1, 6), (3, 3), (7, 2), (5, 5), (6, 3), (8, 1), (2, 2),
                             (9, 0), (4, 4), (10, 10), (20, 5), (12, 3)]]
OPEN = [
    "Once upon a time, in a small village by the sea,", "Here is a short poem about autumn:\n",
    "def fibonacci(n):\n", "The best way to learn a new language is", "Dear Sam,\n\nThank you for",
    "import numpy as np\n\n# compute the mean of each row\n", "Three tips for a good night's sleep:\n1.",
    "The history of the bicycle begins", "In the morning, the baker", "My favourite season is",
    "昔々、ある村に", "今日はとても", "SELECT name FROM", "The recipe for pancakes needs",
    "A haiku about rain:\n", "The meeting was postponed because", "She opened the door and saw",
    "# A function that reverses a string\ndef reverse(s):\n", "To make a cup of tea, first",
    "The three primary colours are", "Why do cats purr? Cats purr when", "Dear diary, today I",
    "The old lighthouse keeper", "An email to a colleague about a delayed report:\n",
    "The rules of chess are simple to learn:", "Summer holidays are", "<|im_start|>user\nHello<|im_end|>\n",
    "for (int i = 0; i < n; i++) {", "The train to the coast", "A list of fruits: apple, banana,",
    "The weather forecast for tomorrow says", "When I was a child, I", "Steps to plant a tree:\n1.",
    "The first rule of cooking is", "class Stack:\n    def __init__(self):\n",
]


# ---- data of the families added for issue 12 (all project-written) ----
MORE_CAPITALS = [("Netherlands", "Amsterdam"), ("Belgium", "Brussels"), ("Switzerland", "Bern"),
                 ("Turkey", "Ankara"), ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Mexico", "Mexico City"),
                 ("Argentina", "Buenos Aires"), ("Chile", "Santiago"), ("Venezuela", "Caracas"),
                 ("India", "New Delhi"), ("Pakistan", "Islamabad"), ("Indonesia", "Jakarta"),
                 ("Philippines", "Manila"), ("Vietnam", "Hanoi"), ("South Korea", "Seoul"),
                 ("Australia", "Canberra"), ("New Zealand", "Wellington"), ("Nigeria", "Abuja"),
                 ("Ethiopia", "Addis Ababa"), ("Morocco", "Rabat"), ("Ukraine", "Kyiv"),
                 ("the Czech Republic", "Prague"), ("Romania", "Bucharest"), ("Scotland", "Edinburgh"),
                 ("Wales", "Cardiff"), ("Iceland", "Reykjavik"), ("Saudi Arabia", "Riyadh"),
                 ("Syria", "Damascus"), ("Lebanon", "Beirut"), ("Afghanistan", "Kabul"),
                 ("Bangladesh", "Dhaka"), ("Nepal", "Kathmandu"), ("Colombia", "Bogota"),
                 ("Bulgaria", "Sofia"), ("Serbia", "Belgrade"), ("Croatia", "Zagreb"), ("Jamaica", "Kingston")]
ALT_CITY = {"Kyiv": ["Kyiv", "Kiev"], "Bogota": ["Bogota", "Bogotá"], "Reykjavik": ["Reykjavik", "Reykjavík"]}
MORE_WORDS = ["table", "carrot", "pillow", "bridge", "castle", "dragon", "hammer", "jacket", "kettle",
              "lemon", "magnet", "needle", "orange", "parrot", "rabbit", "saddle", "tunnel", "wallet",
              "yellow", "zebra", "anchor", "bottle", "cactus", "donkey", "engine", "feather", "guitar",
              "helmet", "island", "jungle"]
PLURALS = [("cat", "cats"), ("dog", "dogs"), ("book", "books"), ("tree", "trees"), ("car", "cars"),
           ("house", "houses"), ("bird", "birds"), ("hand", "hands"), ("cup", "cups"), ("door", "doors"),
           ("box", "boxes"), ("fox", "foxes"), ("bus", "buses"), ("dish", "dishes"), ("church", "churches"),
           ("glass", "glasses"), ("brush", "brushes"), ("watch", "watches"), ("baby", "babies"),
           ("city", "cities"), ("lady", "ladies"), ("party", "parties"), ("story", "stories"),
           ("key", "keys"), ("boy", "boys"), ("day", "days"), ("toy", "toys"), ("leaf", "leaves"),
           ("knife", "knives"), ("wolf", "wolves"), ("man", "men"), ("woman", "women"), ("child", "children"),
           ("mouse", "mice"), ("foot", "feet"), ("tooth", "teeth"), ("goose", "geese"), ("person", "people"),
           ("apple", "apples"), ("chair", "chairs"), ("window", "windows"), ("flower", "flowers"),
           ("bag", "bags"), ("star", "stars"), ("egg", "eggs"), ("ship", "ships"), ("horse", "horses"),
           ("river", "rivers"), ("bottle", "bottles"), ("potato", "potatoes")]
PAST = [("walk", "walked"), ("jump", "jumped"), ("play", "played"), ("talk", "talked"), ("open", "opened"),
        ("clean", "cleaned"), ("cook", "cooked"), ("help", "helped"), ("look", "looked"), ("call", "called"),
        ("want", "wanted"), ("start", "started"), ("watch", "watched"), ("climb", "climbed"), ("paint", "painted"),
        ("dance", "danced"), ("smile", "smiled"), ("live", "lived"), ("stop", "stopped"), ("cry", "cried"),
        ("go", "went"), ("see", "saw"), ("eat", "ate"), ("run", "ran"), ("come", "came"), ("take", "took"),
        ("give", "gave"), ("write", "wrote"), ("drink", "drank"), ("sing", "sang"), ("swim", "swam"),
        ("sit", "sat"), ("make", "made"), ("buy", "bought"), ("think", "thought"), ("bring", "brought"),
        ("teach", "taught"), ("find", "found"), ("sleep", "slept"), ("speak", "spoke"), ("fly", "flew"),
        ("know", "knew"), ("drive", "drove"), ("begin", "began"), ("break", "broke"), ("wash", "washed"),
        ("laugh", "laughed"), ("listen", "listened"), ("visit", "visited"), ("carry", "carried")]
OPPOSITES = [("hot", "cold"), ("big", "small"), ("up", "down"), ("day", "night"), ("fast", "slow"),
             ("happy", "sad"), ("tall", "short"), ("old", "new"), ("open", "closed"), ("light", "dark"),
             ("left", "right"), ("wet", "dry"), ("hard", "soft"), ("full", "empty"), ("rich", "poor"),
             ("early", "late"), ("strong", "weak"), ("thick", "thin"), ("loud", "quiet"), ("in", "out"),
             ("push", "pull"), ("win", "lose"), ("good", "bad"), ("yes", "no"), ("black", "white"),
             ("top", "bottom"), ("first", "last"), ("inside", "outside"), ("clean", "dirty"),
             ("heavy", "light"), ("high", "low"), ("long", "short"), ("near", "far"), ("true", "false"),
             ("love", "hate"), ("start", "end"), ("buy", "sell"), ("north", "south"), ("east", "west"),
             ("boy", "girl"), ("before", "after"), ("question", "answer"), ("summer", "winter"),
             ("cheap", "expensive"), ("easy", "difficult")]
ALT_OPPOSITE = {"big": ["small", "little"], "old": ["new", "young"], "open": ["closed", "shut"],
                "easy": ["difficult", "hard"], "loud": ["quiet", "soft"]}
COMPARATIVES = [("big", "bigger"), ("small", "smaller"), ("tall", "taller"), ("fast", "faster"),
                ("slow", "slower"), ("old", "older"), ("young", "younger"), ("long", "longer"),
                ("short", "shorter"), ("hot", "hotter"), ("cold", "colder"), ("warm", "warmer"),
                ("strong", "stronger"), ("happy", "happier"), ("easy", "easier"), ("heavy", "heavier"),
                ("high", "higher"), ("low", "lower"), ("dark", "darker"), ("bright", "brighter"),
                ("loud", "louder"), ("quick", "quicker"), ("rich", "richer"), ("deep", "deeper"),
                ("good", "better"), ("bad", "worse"), ("soft", "softer"),
                ("hard", "harder"), ("clean", "cleaner"), ("thin", "thinner"), ("thick", "thicker"),
                ("wide", "wider"), ("large", "larger"), ("sweet", "sweeter"), ("smart", "smarter")]
SOUNDS = [("dog", ["woof", "bark", "barks"]), ("cat", ["meow", "miaow", "meows"]), ("cow", ["moo", "moos"]),
          ("sheep", ["baa", "bleat", "bleats"]), ("duck", ["quack", "quacks"]), ("pig", ["oink", "oinks"]),
          ("horse", ["neigh", "neighs"]), ("lion", ["roar", "roars"]), ("owl", ["hoot", "hoots"]),
          ("snake", ["hiss", "hisses"]), ("bee", ["buzz", "buzzes"]), ("frog", ["ribbit", "croak", "croaks"]),
          ("mouse", ["squeak", "squeaks"]), ("hen", ["cluck", "clucks"]), ("wolf", ["howl", "howls"]),
          ("donkey", ["hee-haw", "bray", "brays"]), ("bird", ["tweet", "chirp", "sing", "sings"]),
          ("rooster", ["cock-a-doodle-doo"]), ("turkey", ["gobble"]), ("goat", ["baa", "bleat", "maa"])]
COLOURS = [("banana", "yellow"), ("snow", "white"), ("grass", "green"), ("coal", "black"), ("sky", "blue"),
           ("tomato", "red"), ("carrot", "orange"), ("lemon", "yellow"), ("strawberry", "red"),
           ("milk", "white"), ("cherry", "red"), ("chocolate", "brown"), ("leaf", "green"), ("sun", "yellow"),
           ("blood", "red"), ("ocean", "blue"), ("night", "black"), ("cucumber", "green"), ("lime", "green"),
           ("pumpkin", "orange"), ("cloud", "white"), ("frog", "green"), ("crow", "black"), ("salt", "white"),
           ("fire truck", "red"), ("school bus", "yellow"), ("soil", "brown"), ("emerald", "green"),
           ("ruby", "red"), ("sapphire", "blue"), ("polar bear", "white"), ("panther", "black"),
           ("broccoli", "green"), ("egg yolk", "yellow"), ("coffee", "brown")]
YOUNG = [("cat", ["kitten"]), ("dog", ["puppy", "pup"]), ("cow", ["calf"]), ("sheep", ["lamb"]),
         ("horse", ["foal", "colt", "filly"]), ("duck", ["duckling"]), ("pig", ["piglet"]), ("goat", ["kid"]),
         ("frog", ["tadpole"]), ("bear", ["cub"]), ("lion", ["cub"]), ("kangaroo", ["joey"]), ("deer", ["fawn"]),
         ("goose", ["gosling"]), ("owl", ["owlet"]), ("hen", ["chick"]), ("swan", ["cygnet"]),
         ("tiger", ["cub"]), ("fox", ["cub", "kit"]), ("whale", ["calf"])]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
                "nineteen", "twenty"]
LANGUAGES = [("France", "French"), ("Germany", "German"), ("Spain", "Spanish"), ("Italy", "Italian"),
             ("Japan", "Japanese"), ("China", "Chinese", "Mandarin"), ("Russia", "Russian"),
             ("Portugal", "Portuguese"), ("Greece", "Greek"), ("Poland", "Polish"), ("Sweden", "Swedish"),
             ("Turkey", "Turkish"), ("Finland", "Finnish"), ("Norway", "Norwegian"), ("Denmark", "Danish"),
             ("Netherlands", "Dutch"), ("Korea", "Korean"), ("Hungary", "Hungarian"), ("Thailand", "Thai"),
             ("Vietnam", "Vietnamese"), ("Iran", "Persian", "Farsi"), ("England", "English"),
             ("Brazil", "Portuguese"), ("Mexico", "Spanish"), ("Ukraine", "Ukrainian"), ("Egypt", "Arabic")]
INITIAL_WORDS = ["apple", "banana", "cherry", "dolphin", "elephant", "forest", "garden", "house", "island",
                 "jacket", "kitchen", "lemon", "mountain", "number", "ocean", "pencil", "queen", "river",
                 "sugar", "table", "umbrella", "violin", "window", "yellow", "zebra", "bottle", "candle",
                 "dragon", "monkey", "tiger", "water", "picture", "rocket", "guitar"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"
FIRST_NAMES = ["Lina", "Omar", "Mia", "Tom", "Sara", "Ivan", "Nora", "Ravi", "Ella", "Jon", "Ada", "Leo"]
CITIES = ["Oslo", "Lima", "Rome", "Cairo", "Tokyo", "Paris", "Berlin", "Madrid", "Dublin", "Vienna"]
PETS = ["cat", "dog", "rabbit", "parrot", "hamster", "turtle", "goldfish", "horse"]
FOODS = ["pizza", "soup", "rice", "pasta", "salad", "bread", "cheese", "noodles"]


def _shots(rng: random.Random, pool: list, target, k: int) -> list:
    """k items of pool other than target (and not sharing its key), in a seeded random order."""
    key = target[0] if isinstance(target, tuple) else target
    return rng.sample([x for x in pool if (x[0] if isinstance(x, tuple) else x) != key], k)


def _arrow(pairs) -> str:
    return "".join(f"{a} -> {b}\n" for a, b in pairs)


def _seed_candidates() -> list[dict]:
    """The first families (capitals, facts, additions, sequences, copying, locker recall), unchanged."""
    rng = random.Random(0)
    out = []
    for country, city in CAPITALS:
        out.append({"id": f"capital-{country.lower()}", "prompt": f"The capital of {country} is",
                    "references": [city]})
    for i, (p, r) in enumerate(FACTS):
        out.append({"id": f"fact-{i:02d}", "prompt": p, "references": r})
    for i, (a, b) in enumerate(ARITH):
        shots = "1 + 1 = 2\n3 + 4 = 7\n10 + 5 = 15\n"
        out.append({"id": f"add-{i:02d}", "prompt": f"{shots}{a} + {b} =", "references": [str(a + b)]})
    for i, (p, r) in enumerate(SEQUENCES):
        out.append({"id": f"seq-{i:02d}", "prompt": p, "references": r})
    for i, w in enumerate(WORDS):
        others = [x for x in WORDS if x != w]
        a, b = rng.sample(others, 2)
        prompt = f"Copy the word.\nInput: {a}\nOutput: {a}\nInput: {b}\nOutput: {b}\nInput: {w}\nOutput:"
        out.append({"id": f"copy-{i:02d}", "prompt": prompt, "references": [w]})
    out += _recall(rng, range(16))
    return out


def _recall(rng: random.Random, idx) -> list[dict]:
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white", "pink", "brown"]
    out = []
    for i in idx:
        codes = {c: rng.randint(10, 99) for c in colours}
        filler = ("The codes below open the lockers in the sports hall. Keep them safe and do not "
                  "share them with anyone outside the team. ")
        table = "\n".join(f"The {c} locker code is {n}." for c, n in codes.items())
        ask = colours[rng.randrange(len(colours))]
        prompt = f"{filler}\n{table}\n{filler}\nQuestion: What is the {ask} locker code?\nAnswer: The {ask} locker code is"
        out.append({"id": f"recall-{i:02d}", "prompt": prompt, "references": [str(codes[ask])]})
    return out


def _arith(family: str, n: int, first: int, op: str, pick) -> list[dict]:
    """Few-shot arithmetic: three solved lines, then one to answer; pick(rng) -> (a, b, answer)."""
    rng = random.Random(family)
    out, seen = [], set()
    while len(out) < n:
        a, b, c = pick(rng)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        shots = "".join(f"{x} {op} {y} = {z}\n" for x, y, z in (pick(rng) for _ in range(3)))
        out.append({"id": f"{family}-{first + len(out):02d}", "prompt": f"{shots}{a} {op} {b} =",
                    "references": [str(c)]})
    return out


def _add(rng):
    a, b = rng.randint(1, 20), rng.randint(1, 20)
    return a, b, a + b


def _sub(rng):
    a = rng.randint(2, 20)
    b = rng.randint(1, a)
    return a, b, a - b


def _mul(rng):
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    return a, b, a * b


def _counting() -> list[dict]:
    rng = random.Random("count")
    out, seen = [], set()
    while len(out) < 40:
        step = rng.choice([1, 1, 2, 2, 3, 4, 5, 5, 10, 10, 100])
        start = step * rng.randint(0, 12) + (rng.randint(1, 30) if step == 1 else 0)
        if (step, start) in seen:
            continue
        seen.add((step, start))
        terms = [start + k * step for k in range(4)]
        out.append({"id": f"count-{len(out):02d}", "prompt": ", ".join(map(str, terms)) + ",",
                    "references": [str(start + 4 * step)]})
    return out


def _countdown() -> list[dict]:
    rng = random.Random("countdown")
    out, seen = [], set()
    while len(out) < 30:
        step = rng.choice([1, 1, 1, 2, 5, 10])
        start = step * rng.randint(6, 15) + (rng.randint(0, 20) if step == 1 else 0)
        if (step, start) in seen:
            continue
        seen.add((step, start))
        terms = [start - k * step for k in range(4)]
        out.append({"id": f"countdown-{len(out):02d}", "prompt": ", ".join(map(str, terms)) + ",",
                    "references": [str(start - 4 * step)]})
    return out


def _cyclic(family: str, names: list[str], what: str) -> list[dict]:
    """Weekdays or months: three in a row, the one after (few-shot), and 'after X comes'."""
    rng = random.Random(family)
    n, out = len(names), []
    for i in range(n):
        out.append({"prompt": ", ".join(names[(i + k) % n] for k in range(3)) + ",",
                    "references": [names[(i + 3) % n]]})
    for i in range(n):
        pairs = [(names[j], names[(j + 1) % n]) for j in rng.sample([j for j in range(n) if j != i], 3)]
        out.append({"prompt": f"{_arrow(pairs)}{names[i]} ->", "references": [names[(i + 1) % n]]})
    if what == "day":
        for i in range(n):
            out.append({"prompt": f"Yesterday was {names[i]}, so today is", "references": [names[(i + 1) % n]]})
    else:
        for i in range(n):
            out.append({"prompt": f"The month after {names[i]} is", "references": [names[(i + 1) % n]]})
    return [{"id": f"{family}-{k:02d}", **c} for k, c in enumerate(out)]


def _letters() -> list[dict]:
    rng = random.Random("letter")
    out = []
    for i in rng.sample(range(22), 12):
        out.append({"prompt": ", ".join(LETTERS[i:i + 3]) + ",", "references": [LETTERS[i + 3]]})
    for i in rng.sample(range(22), 8):
        out.append({"prompt": ", ".join(LETTERS[i:i + 4]).upper() + ",", "references": [LETTERS[i + 4].upper()]})
    for i in rng.sample(range(1, 25), 12):
        pairs = [(LETTERS[j], LETTERS[j + 1]) for j in rng.sample([j for j in range(25) if j != i], 3)]
        out.append({"prompt": f"Next letter.\n{_arrow(pairs)}{LETTERS[i]} ->", "references": [LETTERS[i + 1]]})
    return [{"id": f"letter-{k:02d}", **c} for k, c in enumerate(out)]


def _copy_more() -> list[dict]:
    rng = random.Random("copy")
    out = []
    for i, w in enumerate(MORE_WORDS):
        a, b = rng.sample([x for x in MORE_WORDS + WORDS if x != w], 2)
        prompt = f"Copy the word.\nInput: {a}\nOutput: {a}\nInput: {b}\nOutput: {b}\nInput: {w}\nOutput:"
        out.append({"id": f"copy-{len(WORDS) + i:02d}", "prompt": prompt, "references": [w]})
    return out


def _repeat() -> list[dict]:
    rng = random.Random("repeat")
    chars = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

    def code() -> str:
        return "".join(rng.choice(chars) for _ in range(rng.randint(4, 6)))

    out = []
    for i in range(40):
        a, b, c = code(), code(), code()
        prompt = f"Repeat the code exactly.\nCode: {a}\nRepeat: {a}\nCode: {b}\nRepeat: {b}\nCode: {c}\nRepeat:"
        out.append({"id": f"repeat-{i:02d}", "prompt": prompt, "references": [c]})
    return out


def _json_lookup() -> list[dict]:
    rng = random.Random("json")
    out = []
    for i in range(40):
        rec = {"name": rng.choice(FIRST_NAMES), "city": rng.choice(CITIES), "pet": rng.choice(PETS),
               "food": rng.choice(FOODS), "age": rng.randint(18, 80)}
        shot, ask = rng.sample(list(rec), 2)
        prompt = (f"Data: {json.dumps(rec)}\nQ: What is the {shot}?\nA: {rec[shot]}\n"
                  f"Q: What is the {ask}?\nA:")
        out.append({"id": f"json-{i:02d}", "prompt": prompt, "references": [str(rec[ask])]})
    return out


def _fewshot(family: str, pairs: list[tuple], alt: dict | None = None, header: str = "", k: int = 3,
             skip: tuple = ()) -> list[dict]:
    """One candidate per pair: k other pairs as 'x -> y' lines, then 'x ->'. pairs: (x, y, *more_refs)."""
    rng = random.Random(family)
    out = []
    for p in pairs:
        if p[0] in skip:
            continue
        shots = [(q[0], q[1]) for q in _shots(rng, pairs, p, k)]
        refs = (alt or {}).get(p[0], list(p[1:]))
        out.append({"id": f"{family}-{len(out):02d}", "prompt": f"{header}{_arrow(shots)}{p[0]} ->",
                    "references": refs})
    return out


def _sounds() -> list[dict]:
    pairs = [(a, s[0], *s[1:]) for a, s in SOUNDS]
    out = _fewshot("sound", pairs, header="Animal sounds.\n")
    for a, s in SOUNDS:
        out.append({"id": f"sound-{len(out):02d}", "prompt": f"What does a {a} say? A {a} says",
                    "references": s})
    return out


def _numwords() -> list[dict]:
    pairs = [(str(i), w) for i, w in enumerate(NUMBER_WORDS)]
    out = _fewshot("numword", pairs)
    rng = random.Random("numword-back")
    for i, w in enumerate(NUMBER_WORDS):
        shots = [(v, str(j)) for j, v in rng.sample([x for x in enumerate(NUMBER_WORDS) if x[0] != i], 3)]
        out.append({"id": f"numword-{len(out):02d}", "prompt": f"{_arrow(shots)}{w} ->", "references": [str(i)]})
    return out


def candidates() -> list[dict]:
    out = _seed_candidates()
    for country, city in MORE_CAPITALS:
        slug = country.lower().removeprefix("the ").replace(" ", "")
        out.append({"id": f"capital-{slug}", "prompt": f"The capital of {country} is",
                    "references": ALT_CITY.get(city, [city])})
    out += _arith("add", 40, len(ARITH), "+", _add)
    out += _arith("sub", 40, 0, "-", _sub)
    out += _arith("mul", 36, 0, "x", _mul)
    out += _counting() + _countdown()
    out += _cyclic("weekday", WEEKDAYS, "day") + _cyclic("month", MONTHS, "month") + _letters()
    out += _copy_more() + _repeat()
    out += _recall(random.Random("recall"), range(16, 32))
    out += _json_lookup()
    out += _fewshot("plural", PLURALS)
    out += _fewshot("past", PAST)
    out += _fewshot("opposite", OPPOSITES, ALT_OPPOSITE)
    out += _fewshot("comparative", COMPARATIVES)
    out += _sounds()
    out += _fewshot("colour", COLOURS)
    out += _fewshot("young", [(a, *y) for a, y in YOUNG])
    out += _numwords()
    out += _fewshot("language", LANGUAGES)
    out += _fewshot("initial", [(w, w[0]) for w in INITIAL_WORDS], skip=("apple", "island"))
    seen: set[str] = set()  # a prompt text that an earlier family already asks is not asked again
    out = [c for c in out if not (c["prompt"] in seen or seen.add(c["prompt"]))]
    for i, p in enumerate(OPEN):
        out.append({"id": f"open-{i:02d}", "prompt": p, "long": i < 12})
    return out


def family(pid: str) -> str:
    return pid.rsplit("-", 1)[0]


# ---- filtering against the baseline ----

def _answer_span(tok, ids: list[int], refs) -> int:
    """Tokens of a continuation that decide its correctness: up to the first correct prefix, plus one
    more (a following token could still extend the answer's last word)."""
    from harness.generation import is_correct

    for j in range(1, len(ids) + 1):
        if is_correct(tok.decode(ids[:j], skip_special_tokens=True), refs):
            return min(j + 1, len(ids))
    return len(ids)


def margins(model, tok, items) -> list[float]:
    """Least lead of the greedy token over the runner-up on each item's answer span (unbatched).

    items: (prompt text, continuation ids, references); -1 where the unbatched greedy token differs."""
    import torch

    from harness.generation import attention_impl, encode_prompt

    out = []
    with torch.no_grad(), attention_impl(model, "sdpa"):
        for text, ids, refs in items:
            n = _answer_span(tok, ids, refs)
            if n == 0:
                out.append(-1.0)
                continue
            p = encode_prompt(tok, text, "auto")
            logits = model(input_ids=torch.tensor([p + ids[:n]])).logits[0, len(p) - 1:len(p) - 1 + n].float()
            top = logits.topk(2, dim=-1)
            if top.indices[:, 0].tolist() != ids[:n]:
                out.append(-1.0)
            else:
                out.append(float((top.values[:, 0] - top.values[:, 1]).min()))
    return out


def select(cands: list[dict], ok: dict[str, bool], target: int = TARGET_TOTAL, seed: int = 0):
    """Stable-correct candidates, families thinned to a common cap (seeded), in candidate order."""
    fams: dict[str, list[dict]] = {}
    for c in cands:
        if c.get("references") and ok[c["id"]]:
            fams.setdefault(family(c["id"]), []).append(c)
    fams = {f: v for f, v in fams.items() if len(v) >= MIN_FAMILY}
    cap = max(v for v in range(1, target + 1) if sum(min(len(x), v) for x in fams.values()) <= target) \
        if sum(len(x) for x in fams.values()) > target else max(map(len, fams.values()))
    while cap > MAX_SHARE * sum(min(len(x), cap) for x in fams.values()):
        cap -= 1
    rng = random.Random(seed)
    keep = set()
    for f, v in fams.items():
        picked = v if len(v) <= cap else rng.sample(v, cap)
        keep.update(c["id"] for c in picked)
    return [c for c in cands if c["id"] in keep], cap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", help="JSON file caching generations by prompt text (read if present, then updated)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "harness" / "data" / "prompts.jsonl"),
                    help="where to write the prompt set (default: the bundled file)")
    args = ap.parse_args()

    import torch

    from harness.behaviour import prompt_variants
    from harness.generation import generate, is_correct
    from harness.models import load_model, load_tokenizer, resolve_model

    torch.set_num_threads(2)
    cands = candidates()
    ref_cands = [c for c in cands if c.get("references")]
    raw = json.loads(Path(args.raw).read_text()) if args.raw and Path(args.raw).exists() else {}
    src = resolve_model("smollm2-135m")
    model, tok = load_model(src.local_dir), load_tokenizer(src.local_dir)
    texts = list(dict.fromkeys(t for c in ref_cands for t in [c["prompt"], *prompt_variants(c["prompt"])]))
    todo = [t for t in texts if t not in raw]
    print(f"{len(ref_cands)} reference candidates in {len({family(c['id']) for c in ref_cands})} families; "
          f"{len(texts)} texts with variants, {len(todo)} to generate", flush=True)
    t0, chunk = time.time(), 160
    for a in range(0, len(todo), chunk):
        part = todo[a:a + chunk]
        outs, ids = generate(model, tok, part, max_new_tokens=16, batch_size=16, bos="auto", return_ids=True)
        raw.update({t: {"text": o, "ids": i} for t, o, i in zip(part, outs, ids)})
        done, el = a + len(part), time.time() - t0
        print(f"generated {done}/{len(todo)} in {el:.0f}s (eta {el / done * (len(todo) - done):.0f}s)", flush=True)
        if args.raw:
            Path(args.raw).write_text(json.dumps(raw, ensure_ascii=False))
    t_gen = time.time() - t0
    correct = {c["id"]: all(is_correct(raw[t]["text"], c["references"])
                            for t in [c["prompt"], *prompt_variants(c["prompt"])]) for c in ref_cands}
    t1 = time.time()
    items = [(t, c) for c in ref_cands if correct[c["id"]] for t in [c["prompt"], *prompt_variants(c["prompt"])]]
    ms = margins(model, tok, [(t, raw[t]["ids"], c["references"]) for t, c in items])
    least: dict[str, float] = {}
    for (t, c), m in zip(items, ms):
        least[c["id"]] = min(least.get(c["id"], float("inf")), m)
    print(f"margins of {len(items)} texts in {time.time() - t1:.0f}s", flush=True)
    ok = {c["id"]: correct[c["id"]] and least[c["id"]] >= MIN_MARGIN for c in ref_cands}
    for c in ref_cands:
        if not ok[c["id"]]:
            why = "near-tie %.2f" % least[c["id"]] if correct[c["id"]] else "wrong"
            print(f"drop {c['id']} ({why}): {raw[c['prompt']]['text'].strip().splitlines()[:1]}")
    kept, cap = select(cands, ok)
    opens = [c for c in cands if not c.get("references")]
    n_cand = Counter(family(c["id"]) for c in ref_cands)
    n_ok = Counter(family(c["id"]) for c in ref_cands if ok[c["id"]])
    n_keep = Counter(family(c["id"]) for c in kept)
    print(f"\nfamily: candidates / stable-correct / kept (cap {cap}, min family {MIN_FAMILY})")
    for f in n_cand:
        print(f"  {f}: {n_cand[f]} / {n_ok[f]} / {n_keep[f]}")
    print(f"  total: {len(ref_cands)} / {sum(n_ok.values())} / {len(kept)} in {len(n_keep)} families; "
          f"generation {t_gen:.0f}s for {len(todo)} texts")
    path = Path(args.out)
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in kept + opens), encoding="utf-8")
    print(f"wrote {len(kept)} reference prompts and {len(opens)} open ones to {path}")


if __name__ == "__main__":
    main()
