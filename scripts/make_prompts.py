"""Write harness/data/prompts.jsonl: project-written prompt candidates, keeping those with
references only where they are stable-correct under the default model's baseline.

Run when the prompt families change (see "Last run" below for the time it takes on 2 CPU cores):

    python scripts/make_prompts.py [--raw /tmp/prompt-generations.json]

Every candidate is written by this project, most from templates filled by seeded random choices
(one random.Random per family, so that families do not shift each other). A prompt's family is its
id up to the last "-" (the harness resamples prompts by family); the file groups prompts by family.

Stable-correct: the greedy 16-token continuation of smollm2-135m (batched, bos="auto") is correct
(harness.measure.generation.is_correct) on the prompt and on each of its three neutral variants
(harness.measure.behaviour.prompt_variants), and no variant's answer rests on a near-tie: on the tokens
that decide correctness, the greedy token leads the runner-up by at least MIN_MARGIN logits in an
unbatched forward pass, so batch composition or padding cannot flip the answer. Families with
fewer than MIN_FAMILY survivors are dropped; larger ones are thinned (seeded) to a common cap, so
that about TARGET_TOTAL prompts remain and no family holds more than 20% of them. The 35 open
prompts (no references; the first 12 marked "long") follow, unchanged.

Last run (smollm2-135m, CPU, 2 threads; candidates / stable-correct / kept):
    capital 124 / 32 / 32      fact 60 / 11 / 11       add 56 / 15 / 15        seq 39 / 18 / 18
    copy 46 / 35 / 35          recall 84 / 12 / 12     count 57 / 28 / 28      countdown 36 / 11 / 11
    letter 31 / 10 / 10        mul 36 / 5 / 0          repeat 40 / 12 / 12     json 44 / 23 / 23
    plural 100 / 66 / 66       past 50 / 21 / 21       opposite 90 / 25 / 25   colour 32 / 4 / 0
    numword 40 / 35 / 35       language 45 / 28 / 28
    total 1010 / 391 / 382 in 16 families (mul and colour fall under MIN_FAMILY; no family reached
    the cap, the largest is plural with 17%). 426 candidates were correct on all four texts; 35 of
    them were dropped as near-ties. A run from scratch (no --raw cache) took 16.5 minutes on 2 cores:
    12 minutes to generate 3882 texts (1010 prompts x 4, less duplicates; 5.3 texts/s), then the
    margins; it wrote the same file as the run before it, whose batches were composed differently.
    The neutral variant that fails most is the trailing newline: after "...is\n" the model often
    starts a new line of its own ("The answer is: ..."), which is why the families below prefer
    "Q: ...\nA:" questions, one-line sentences and comma-separated sequences. Formats tried and left
    out because few prompts survived: few-shot subtraction, animal sounds, baby animals, first
    letters, comparatives, "x -> y" arrows for most word tasks.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

MIN_MARGIN = 0.05  # logits: far above the float noise of padding and batch composition (~1e-4)
TARGET_TOTAL = 420  # reference prompts kept at most
MAX_SHARE = 0.20  # of the kept reference prompts, per family
MIN_FAMILY = 10  # the 48-prompt smoke subset (about every 9.5th line) then hits every family

CAPITALS = [
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("England", "London"),
    ("Russia", "Moscow"),
    ("Egypt", "Cairo"),
    ("China", "Beijing"),
    ("Canada", "Ottawa"),
    ("Portugal", "Lisbon"),
    ("Greece", "Athens"),
    ("Austria", "Vienna"),
    ("Ireland", "Dublin"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Poland", "Warsaw"),
    ("Kenya", "Nairobi"),
    ("Thailand", "Bangkok"),
    ("Cuba", "Havana"),
    ("Peru", "Lima"),
    ("Hungary", "Budapest"),
    ("Denmark", "Copenhagen"),
    ("Finland", "Helsinki"),
]
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
    ("1, 2, 3, 4, 5,", ["6"]),
    ("2, 4, 6, 8,", ["10"]),
    ("10, 20, 30, 40,", ["50"]),
    ("5, 10, 15, 20,", ["25"]),
    ("1, 3, 5, 7,", ["9"]),
    ("100, 200, 300,", ["400"]),
    ("Monday, Tuesday, Wednesday,", ["Thursday"]),
    ("January, February, March,", ["April"]),
    ("a, b, c, d,", ["e"]),
    ("A, B, C, D, E,", ["F"]),
    ("one, two, three, four,", ["five"]),
    ("first, second, third,", ["fourth"]),
    ("3, 6, 9, 12,", ["15"]),
    ("11, 12, 13, 14,", ["15"]),
    ("spring, summer, autumn,", ["winter"]),
    ("7, 8, 9,", ["10"]),
    ("Sunday, Monday, Tuesday,", ["Wednesday"]),
    ("June, July, August,", ["September"]),
]
WORDS = [
    "apple",
    "window",
    "river",
    "lantern",
    "pencil",
    "garden",
    "violin",
    "rocket",
    "candle",
    "forest",
    "button",
    "mirror",
    "tiger",
    "ocean",
    "ladder",
    "basket",
]
ARITH = [
    (a, b)
    for a, b in [
        (2, 3),
        (4, 5),
        (1, 6),
        (3, 3),
        (7, 2),
        (5, 5),
        (6, 3),
        (8, 1),
        (2, 2),
        (9, 0),
        (4, 4),
        (10, 10),
        (20, 5),
        (12, 3),
    ]
]
OPEN = [
    "Once upon a time, in a small village by the sea,",
    "Here is a short poem about autumn:\n",
    "def fibonacci(n):\n",
    "The best way to learn a new language is",
    "Dear Sam,\n\nThank you for",
    "import numpy as np\n\n# compute the mean of each row\n",
    "Three tips for a good night's sleep:\n1.",
    "The history of the bicycle begins",
    "In the morning, the baker",
    "My favourite season is",
    "昔々、ある村に",
    "今日はとても",
    "SELECT name FROM",
    "The recipe for pancakes needs",
    "A haiku about rain:\n",
    "The meeting was postponed because",
    "She opened the door and saw",
    "# A function that reverses a string\ndef reverse(s):\n",
    "To make a cup of tea, first",
    "The three primary colours are",
    "Why do cats purr? Cats purr when",
    "Dear diary, today I",
    "The old lighthouse keeper",
    "An email to a colleague about a delayed report:\n",
    "The rules of chess are simple to learn:",
    "Summer holidays are",
    "<|im_start|>user\nHello<|im_end|>\n",
    "for (int i = 0; i < n; i++) {",
    "The train to the coast",
    "A list of fruits: apple, banana,",
    "The weather forecast for tomorrow says",
    "When I was a child, I",
    "Steps to plant a tree:\n1.",
    "The first rule of cooking is",
    "class Stack:\n    def __init__(self):\n",
]


# ---- data of the families added for issue 12 (all project-written) ----
MORE_CAPITALS = [
    ("Netherlands", "Amsterdam"),
    ("Belgium", "Brussels"),
    ("Switzerland", "Bern"),
    ("Turkey", "Ankara"),
    ("Iran", "Tehran"),
    ("Iraq", "Baghdad"),
    ("Mexico", "Mexico City"),
    ("Argentina", "Buenos Aires"),
    ("Chile", "Santiago"),
    ("Venezuela", "Caracas"),
    ("India", "New Delhi"),
    ("Pakistan", "Islamabad"),
    ("Indonesia", "Jakarta"),
    ("Philippines", "Manila"),
    ("Vietnam", "Hanoi"),
    ("South Korea", "Seoul"),
    ("Australia", "Canberra"),
    ("New Zealand", "Wellington"),
    ("Nigeria", "Abuja"),
    ("Ethiopia", "Addis Ababa"),
    ("Morocco", "Rabat"),
    ("Ukraine", "Kyiv"),
    ("the Czech Republic", "Prague"),
    ("Romania", "Bucharest"),
    ("Scotland", "Edinburgh"),
    ("Wales", "Cardiff"),
    ("Iceland", "Reykjavik"),
    ("Saudi Arabia", "Riyadh"),
    ("Syria", "Damascus"),
    ("Lebanon", "Beirut"),
    ("Afghanistan", "Kabul"),
    ("Bangladesh", "Dhaka"),
    ("Nepal", "Kathmandu"),
    ("Colombia", "Bogota"),
    ("Bulgaria", "Sofia"),
    ("Serbia", "Belgrade"),
    ("Croatia", "Zagreb"),
    ("Jamaica", "Kingston"),
]
ALT_CITY = {"Kyiv": ["Kyiv", "Kiev"], "Bogota": ["Bogota", "Bogotá"], "Reykjavik": ["Reykjavik", "Reykjavík"]}
MORE_FACTS = [  # (question, references), asked after one solved question
    ("What do cows give us?", ["milk"]),
    ("What do hens lay?", ["eggs"]),
    ("How many legs does a spider have?", ["eight", "8"]),
    ("What do we see with?", ["eyes"]),
    ("What do we hear with?", ["ears"]),
    ("How many days are in a week?", ["seven", "7"]),
    ("Where do fish live?", ["water", "sea", "ocean"]),
    ("In which direction does the sun rise?", ["east"]),
    ("How many sides does a triangle have?", ["three", "3"]),
    ("What is the largest planet?", ["Jupiter"]),
    ("What is frozen water called?", ["ice"]),
    ("What season comes after winter?", ["spring"]),
    ("How many legs does a dog have?", ["four", "4"]),
    ("What do bees make?", ["honey"]),
    ("What do we breathe in to live?", ["oxygen", "air"]),
    ("What color is a ripe banana?", ["yellow"]),
    ("What animal is known as the king of the jungle?", ["lion"]),
    ("How many hours are in a day?", ["24"]),
    ("What is the opposite of north?", ["south"]),
    ("What planet do we live on?", ["Earth"]),
    ("What do caterpillars turn into?", ["butterflies", "butterfly", "moths", "moth"]),
    ("What gas do plants take in?", ["carbon dioxide", "CO2"]),
    ("How many months are in a year?", ["twelve", "12"]),
    ("What is the color of snow?", ["white"]),
    ("Which animal has a long trunk?", ["elephant", "elephants"]),
    ("What do you call a house made of ice?", ["igloo"]),
    ("How many wheels does a bicycle have?", ["two", "2"]),
    ("What is the boiling point of water in degrees Celsius?", ["100"]),
    ("What falls from clouds when it rains?", ["water", "rain", "raindrops"]),
    ("Which star gives Earth light and heat?", ["Sun"]),
]
MORE_WORDS = [
    "table",
    "carrot",
    "pillow",
    "bridge",
    "castle",
    "dragon",
    "hammer",
    "jacket",
    "kettle",
    "lemon",
    "magnet",
    "needle",
    "orange",
    "parrot",
    "rabbit",
    "saddle",
    "tunnel",
    "wallet",
    "yellow",
    "zebra",
    "anchor",
    "bottle",
    "cactus",
    "donkey",
    "engine",
    "feather",
    "guitar",
    "helmet",
    "island",
    "jungle",
]
PLURALS = [
    ("cat", "cats"),
    ("dog", "dogs"),
    ("book", "books"),
    ("tree", "trees"),
    ("car", "cars"),
    ("house", "houses"),
    ("bird", "birds"),
    ("hand", "hands"),
    ("cup", "cups"),
    ("door", "doors"),
    ("box", "boxes"),
    ("fox", "foxes"),
    ("bus", "buses"),
    ("dish", "dishes"),
    ("church", "churches"),
    ("glass", "glasses"),
    ("brush", "brushes"),
    ("watch", "watches"),
    ("baby", "babies"),
    ("city", "cities"),
    ("lady", "ladies"),
    ("party", "parties"),
    ("story", "stories"),
    ("key", "keys"),
    ("boy", "boys"),
    ("day", "days"),
    ("toy", "toys"),
    ("leaf", "leaves"),
    ("knife", "knives"),
    ("wolf", "wolves"),
    ("man", "men"),
    ("woman", "women"),
    ("child", "children"),
    ("mouse", "mice"),
    ("foot", "feet"),
    ("tooth", "teeth"),
    ("goose", "geese"),
    ("person", "people"),
    ("apple", "apples"),
    ("chair", "chairs"),
    ("window", "windows"),
    ("flower", "flowers"),
    ("bag", "bags"),
    ("star", "stars"),
    ("egg", "eggs"),
    ("ship", "ships"),
    ("horse", "horses"),
    ("river", "rivers"),
    ("bottle", "bottles"),
    ("potato", "potatoes"),
]
PAST = [
    ("walk", "walked"),
    ("jump", "jumped"),
    ("play", "played"),
    ("talk", "talked"),
    ("open", "opened"),
    ("clean", "cleaned"),
    ("cook", "cooked"),
    ("help", "helped"),
    ("look", "looked"),
    ("call", "called"),
    ("want", "wanted"),
    ("start", "started"),
    ("watch", "watched"),
    ("climb", "climbed"),
    ("paint", "painted"),
    ("dance", "danced"),
    ("smile", "smiled"),
    ("live", "lived"),
    ("stop", "stopped"),
    ("cry", "cried"),
    ("go", "went"),
    ("see", "saw"),
    ("eat", "ate"),
    ("run", "ran"),
    ("come", "came"),
    ("take", "took"),
    ("give", "gave"),
    ("write", "wrote"),
    ("drink", "drank"),
    ("sing", "sang"),
    ("swim", "swam"),
    ("sit", "sat"),
    ("make", "made"),
    ("buy", "bought"),
    ("think", "thought"),
    ("bring", "brought"),
    ("teach", "taught"),
    ("find", "found"),
    ("sleep", "slept"),
    ("speak", "spoke"),
    ("fly", "flew"),
    ("know", "knew"),
    ("drive", "drove"),
    ("begin", "began"),
    ("break", "broke"),
    ("wash", "washed"),
    ("laugh", "laughed"),
    ("listen", "listened"),
    ("visit", "visited"),
    ("carry", "carried"),
]
OPPOSITES = [
    ("hot", "cold"),
    ("big", "small", "little"),
    ("up", "down"),
    ("day", "night"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("tall", "short"),
    ("old", "new", "young"),
    ("open", "closed", "shut"),
    ("light", "dark"),
    ("left", "right"),
    ("wet", "dry"),
    ("hard", "soft"),
    ("full", "empty"),
    ("rich", "poor"),
    ("early", "late"),
    ("strong", "weak"),
    ("thick", "thin"),
    ("loud", "quiet", "soft"),
    ("in", "out"),
    ("push", "pull"),
    ("win", "lose"),
    ("good", "bad"),
    ("yes", "no"),
    ("black", "white"),
    ("top", "bottom"),
    ("first", "last"),
    ("inside", "outside"),
    ("clean", "dirty"),
    ("heavy", "light"),
    ("high", "low"),
    ("long", "short"),
    ("near", "far"),
    ("true", "false"),
    ("love", "hate"),
    ("start", "end", "finish"),
    ("buy", "sell"),
    ("north", "south"),
    ("east", "west"),
    ("boy", "girl"),
    ("before", "after"),
    ("question", "answer"),
    ("summer", "winter"),
    ("cheap", "expensive"),
    ("easy", "difficult", "hard"),
]
COLOURS = [
    ("a banana", "yellow"),
    ("snow", "white"),
    ("grass", "green"),
    ("coal", "black"),
    ("the sky", "blue"),
    ("a tomato", "red"),
    ("a carrot", "orange"),
    ("a lemon", "yellow"),
    ("a strawberry", "red"),
    ("milk", "white"),
    ("a cherry", "red"),
    ("chocolate", "brown"),
    ("a leaf", "green"),
    ("the sun", "yellow"),
    ("blood", "red"),
    ("the ocean", "blue"),
    ("a cucumber", "green"),
    ("a lime", "green"),
    ("a pumpkin", "orange"),
    ("a cloud", "white"),
    ("a frog", "green"),
    ("a crow", "black"),
    ("salt", "white"),
    ("a fire truck", "red"),
    ("a school bus", "yellow"),
    ("soil", "brown"),
    ("an emerald", "green"),
    ("a ruby", "red"),
    ("a polar bear", "white"),
    ("broccoli", "green"),
    ("an egg yolk", "yellow"),
    ("coffee", "brown"),
]
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
LANGUAGES = [
    ("France", "French"),
    ("Germany", "German"),
    ("Spain", "Spanish"),
    ("Italy", "Italian"),
    ("Japan", "Japanese"),
    ("China", "Chinese", "Mandarin"),
    ("Russia", "Russian"),
    ("Portugal", "Portuguese"),
    ("Greece", "Greek"),
    ("Poland", "Polish"),
    ("Sweden", "Swedish"),
    ("Turkey", "Turkish"),
    ("Finland", "Finnish"),
    ("Norway", "Norwegian"),
    ("Denmark", "Danish"),
    ("the Netherlands", "Dutch"),
    ("Korea", "Korean"),
    ("Hungary", "Hungarian"),
    ("Thailand", "Thai"),
    ("Vietnam", "Vietnamese"),
    ("Iran", "Persian", "Farsi"),
    ("England", "English"),
    ("Brazil", "Portuguese"),
    ("Mexico", "Spanish"),
    ("Ukraine", "Ukrainian"),
    ("Egypt", "Arabic"),
    ("Austria", "German"),
    ("Argentina", "Spanish"),
    ("Chile", "Spanish"),
    ("Peru", "Spanish"),
    ("Colombia", "Spanish"),
    ("Cuba", "Spanish"),
    ("Australia", "English"),
    ("the United States", "English"),
    ("Israel", "Hebrew"),
    ("Indonesia", "Indonesian"),
    ("the Czech Republic", "Czech"),
    ("Romania", "Romanian"),
    ("Saudi Arabia", "Arabic"),
    ("Morocco", "Arabic"),
    ("Pakistan", "Urdu"),
    ("Bangladesh", "Bengali", "Bangla"),
    ("Iceland", "Icelandic"),
    ("Ireland", "English", "Irish"),
    ("Jamaica", "English"),
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
LETTERS = "abcdefghijklmnopqrstuvwxyz"
FIRST_NAMES = ["Lina", "Omar", "Mia", "Tom", "Sara", "Ivan", "Nora", "Ravi", "Ella", "Jon", "Ada", "Leo"]
CITIES = ["Oslo", "Lima", "Rome", "Cairo", "Tokyo", "Paris", "Berlin", "Madrid", "Dublin", "Vienna"]
PETS = ["cat", "dog", "rabbit", "parrot", "hamster", "turtle", "goldfish", "horse"]


def _shots(rng: random.Random, pool: list, target, k: int) -> list:
    """k items of pool whose key (first element) differs from target's, in a seeded random order."""
    return rng.sample([x for x in pool if x[0] != target[0]], k)


def _seed_candidates() -> list[dict]:
    """The first families (capitals, facts, additions, sequences, copying, locker recall), unchanged."""
    rng = random.Random(0)
    out = []
    for country, city in CAPITALS:
        out.append({"id": f"capital-{country.lower()}", "prompt": f"The capital of {country} is", "references": [city]})
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
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white", "pink", "brown"]
    for i in range(16):
        codes = {c: rng.randint(10, 99) for c in colours}
        filler = (
            "The codes below open the lockers in the sports hall. Keep them safe and do not "
            "share them with anyone outside the team. "
        )
        table = "\n".join(f"The {c} locker code is {n}." for c, n in codes.items())
        ask = colours[rng.randrange(len(colours))]
        prompt = (
            f"{filler}\n{table}\n{filler}\nQuestion: What is the {ask} locker code?\nAnswer: The {ask} locker code is"
        )
        out.append({"id": f"recall-{i:02d}", "prompt": prompt, "references": [str(codes[ask])]})
    return out


def _numbered(family: str, first: int, items: list[tuple[str, list[str]]]) -> list[dict]:
    return [{"id": f"{family}-{first + k:02d}", "prompt": p, "references": r} for k, (p, r) in enumerate(items)]


def _qa(rng: random.Random, pool: list, question: str, k: int = 2, head: str = "") -> list[tuple[str, list[str]]]:
    """Few-shot questions: k solved 'Q: ...\\nA: ...' pairs from pool, then the one to answer.
    pool: (key, answer, *more accepted answers)."""
    out = []
    for x in pool:
        shots = "".join(f"Q: {question.format(a)}\nA: {b}\n\n" for a, b, *_ in _shots(rng, pool, x, k))
        out.append((f"{head}{shots}Q: {question.format(x[0])}\nA:", list(x[1:])))
    return out


def _sentences(rng: random.Random, pool: list, fmt: str, k: int = 2) -> list[tuple[str, list[str]]]:
    """Few-shot sentences 'fmt(a) b.' on one line, then 'fmt(x)' to complete."""
    out = []
    for x in pool:
        shots = "".join(f"{fmt.format(a)} {b}. " for a, b, *_ in _shots(rng, pool, x, k))
        out.append((f"{shots}{fmt.format(x[0])}", list(x[1:])))
    return out


def _arrows(rng: random.Random, pool: list, k: int = 3) -> list[tuple[str, list[str]]]:
    """Few-shot 'a -> b' lines, then 'x ->'."""
    out = []
    for x in pool:
        shots = "".join(f"{a} -> {b}\n" for a, b, *_ in _shots(rng, pool, x, k))
        out.append((f"{shots}{x[0]} ->", list(x[1:])))
    return out


def _capitals() -> list[dict]:
    rng = random.Random("capital")
    pool = [(c, *ALT_CITY.get(k, [k])) for c, k in CAPITALS + MORE_CAPITALS]
    out = []
    for country, city in MORE_CAPITALS:
        slug = country.lower().removeprefix("the ").replace(" ", "")
        out.append(
            {
                "id": f"capital-{slug}",
                "prompt": f"The capital of {country} is",
                "references": ALT_CITY.get(city, [city]),
            }
        )
    for (country, *_), (prompt, refs) in zip(pool, _qa(rng, pool, "What is the capital of {}?", k=1)):
        slug = country.lower().removeprefix("the ").replace(" ", "")
        out.append({"id": f"capital-{slug}2", "prompt": prompt, "references": refs})
    return out


def _add() -> list[tuple[str, list[str]]]:
    rng = random.Random("add")
    plus = [(f"{a} + {d}", str(a + d)) for d in (1, 1, 2) for a in range(1, 30)]
    out = []
    for x in rng.sample(plus, 30):
        out.append(("".join(f"{a} = {b}\n" for a, b in _shots(rng, plus, x, 3)) + f"{x[0]} =", [x[1]]))
    small = [(a, b) for a in range(1, 6) for b in range(1, 5) if (a, b) not in ARITH]
    for a, b in rng.sample(small, 12):
        shots = "".join(f"{x} + {y} = {x + y}\n" for x, y in rng.sample([s for s in small if s != (a, b)], 3))
        out.append((f"{shots}{a} + {b} =", [str(a + b)]))
    return out


def _mul() -> list[tuple[str, list[str]]]:
    rng = random.Random("mul")
    pool = [(f"{a} times {b}", str(a * b)) for a in range(2, 10) for b in range(2, 10) if a <= b]
    return _qa(rng, pool, "What is {}?")


def _seq_more() -> list[tuple[str, list[str]]]:
    rng = random.Random("seq")
    out = [(", ".join(WEEKDAYS[(i + k) % 7] for k in range(3)) + ",", [WEEKDAYS[(i + 3) % 7]]) for i in range(7)]
    out += [(", ".join(MONTHS[(i + k) % 12] for k in range(3)) + ",", [MONTHS[(i + 3) % 12]]) for i in range(12)]
    for i in rng.sample(range(9), 6):
        out.append((", ".join(NUMBER_WORDS[i + 1 : i + 5]) + ",", [NUMBER_WORDS[i + 5]]))
    return out


def _letters() -> list[tuple[str, list[str]]]:
    rng = random.Random("letter")
    out = [(", ".join(LETTERS[i : i + 4]) + ",", [LETTERS[i + 4]]) for i in rng.sample(range(22), 18)]
    out += [(", ".join(LETTERS[i : i + 4]).upper() + ",", [LETTERS[i + 4].upper()]) for i in rng.sample(range(22), 14)]
    return out


def _counting() -> list[tuple[str, list[str]]]:
    rng = random.Random("count")
    out, seen = [], set()
    while len(out) < 60:
        step = rng.choice([1, 1, 2, 2, 3, 4, 5, 5, 10, 10, 100])
        start = step * rng.randint(0, 12) + (rng.randint(1, 30) if step == 1 else 0)
        if (step, start) not in seen:
            seen.add((step, start))
            out.append((", ".join(str(start + k * step) for k in range(4)) + ",", [str(start + 4 * step)]))
    return out


def _countdown() -> list[tuple[str, list[str]]]:
    rng = random.Random("countdown")
    out, seen = [], set()
    while len(out) < 36:
        step = rng.choice([1, 1, 1, 2, 5, 10])
        start = step * rng.randint(6, 15) + (rng.randint(0, 20) if step == 1 else 0)
        if (step, start) not in seen:
            seen.add((step, start))
            out.append((", ".join(str(start - k * step) for k in range(4)) + ",", [str(start - 4 * step)]))
    return out


def _copy_more() -> list[tuple[str, list[str]]]:
    rng = random.Random("copy")
    out = []
    for w in MORE_WORDS:
        a, b = rng.sample([x for x in MORE_WORDS + WORDS if x != w], 2)
        out.append((f"Copy the word.\nInput: {a}\nOutput: {a}\nInput: {b}\nOutput: {b}\nInput: {w}\nOutput:", [w]))
    return out


def _repeat() -> list[tuple[str, list[str]]]:
    rng = random.Random("repeat")
    chars = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

    def code() -> str:
        return "".join(rng.choice(chars) for _ in range(rng.randint(4, 6)))

    out = []
    for _ in range(40):
        a, b, c = code(), code(), code()
        out.append(
            (f"Repeat the code exactly.\nCode: {a}\nRepeat: {a}\nCode: {b}\nRepeat: {b}\nCode: {c}\nRepeat:", [c])
        )
    return out


def _recall_more() -> list[tuple[str, list[str]]]:
    """Short recall: three lockers (or three people's cities), then the one asked for."""
    rng = random.Random("recall")
    out = []
    for _ in range(44):
        cols = rng.sample(["red", "green", "blue", "yellow", "pink", "white", "black"], 3)
        codes = [rng.randint(10, 99) for _ in cols]
        ask = rng.randrange(3)
        facts = " ".join(f"The {c} locker code is {n}." for c, n in zip(cols, codes))
        out.append((f"{facts} So the {cols[ask]} locker code is", [str(codes[ask])]))
    for _ in range(24):
        names, cities, ask = rng.sample(FIRST_NAMES, 3), rng.sample(CITIES, 3), rng.randrange(3)
        facts = " ".join(f"{n} lives in {c}." for n, c in zip(names, cities))
        out.append((f"{facts}\nQ: Where does {names[ask]} live?\nA: {names[ask]} lives in", [cities[ask]]))
    return out


def _json_lookup() -> list[tuple[str, list[str]]]:
    rng = random.Random("json")
    out = []
    for _ in range(44):
        rec = {"name": rng.choice(FIRST_NAMES), "city": rng.choice(CITIES), "pet": rng.choice(PETS)}
        ask = rng.choice(list(rec))
        out.append((f"Data: {json.dumps(rec)}\nThe {ask} in the data is", [rec[ask]]))
    return out


def _number_words() -> list[tuple[str, list[str]]]:
    rng = random.Random("numword")
    pool = [(w, str(i)) for i, w in enumerate(NUMBER_WORDS)]
    pool += [(TENS[t], str(10 * t)) for t in range(3, 10)]
    pool += [
        (f"{TENS[t]}-{NUMBER_WORDS[u]}", str(10 * t + u))
        for t, u in [(rng.randint(2, 9), rng.randint(1, 9)) for _ in range(14)]
    ]
    pool = list({x[0]: x for x in pool}.values())
    return _qa(rng, pool, "What number is {}?")


def _fact_more() -> list[tuple[str, list[str]]]:
    rng = random.Random("fact")
    out = []
    for q, refs in MORE_FACTS:
        sq, sa = rng.choice([x for x in MORE_FACTS if x[0] != q])
        out.append((f"Q: {sq}\nA: {sa[0].capitalize()}\n\nQ: {q}\nA:", refs))
    return out


def candidates() -> list[dict]:
    out = _seed_candidates()
    out += _capitals()
    out += _numbered("fact", len(FACTS), _fact_more())
    out += _numbered("add", len(ARITH), _add())
    out += _numbered("seq", len(SEQUENCES), _seq_more())
    out += _numbered("copy", len(WORDS), _copy_more())
    out += _numbered("recall", 16, _recall_more())
    out += _numbered("count", 0, _counting())
    out += _numbered("countdown", 0, _countdown())
    out += _numbered("letter", 0, _letters())
    out += _numbered("mul", 0, _mul())
    out += _numbered("repeat", 0, _repeat())
    out += _numbered("json", 0, _json_lookup())
    rng = random.Random("plural")
    out += _numbered(
        "plural", 0, _sentences(rng, PLURALS, "The plural of {} is") + _qa(rng, PLURALS, "What is the plural of {}?")
    )
    out += _numbered(
        "past",
        0,
        _qa(
            random.Random("past"), PAST, "What is the past tense of {}?", head="Answer each question with one word.\n\n"
        ),
    )
    rng = random.Random("opposite")
    out += _numbered("opposite", 0, _arrows(rng, OPPOSITES) + _sentences(rng, OPPOSITES, "The opposite of {} is"))
    out += _numbered("colour", 0, _qa(random.Random("colour"), COLOURS, "What color is {}?"))
    out += _numbered("numword", 0, _number_words())
    out += _numbered("language", 0, _sentences(random.Random("language"), LANGUAGES, "People in {} speak"))
    seen: set[str] = set()  # a prompt that an earlier family already asks is not asked again
    out = [c for c in out if not (c["prompt"] in seen or seen.add(c["prompt"]))]
    for i, p in enumerate(OPEN):
        out.append({"id": f"open-{i:02d}", "prompt": p, "long": i < 12})
    return out


def family(pid: str) -> str:
    return pid.rsplit("-", 1)[0]


# ---- filtering against the baseline ----


def _answer_span(tok, ids: list[int], refs) -> int:
    """How many tokens of a continuation it takes to be correct (len(ids) if it never is)."""
    from harness.metrics.text import is_correct

    for j in range(1, len(ids) + 1):
        if is_correct(tok.decode(ids[:j], skip_special_tokens=True), refs):
            return j
    return len(ids)


def margins(model, tok, items) -> list[float]:
    """Least lead of the greedy choice on the tokens that decide each item's correctness (unbatched).

    Those tokens: the ones up to the first correct prefix, where the lead is over the runner-up, and
    the token after it, where the lead is over the best token that would extend the answer's last
    word (one starting with a word character). items: (prompt text, continuation ids, references);
    -1 where an unbatched greedy token differs from the batched one."""
    import re

    import torch

    from harness.measure.generation import attention_impl, encode_prompt

    extends = torch.tensor([bool(re.match(r"\w", tok.decode([i]))) for i in range(len(tok))])
    out = []
    with torch.no_grad(), attention_impl(model, "sdpa"):
        for text, ids, refs in items:
            n = _answer_span(tok, ids, refs)
            m = min(n + 1, len(ids))
            p = encode_prompt(tok, text, "auto")
            logits = model(input_ids=torch.tensor([p + ids[:m]])).logits[0, len(p) - 1 : len(p) - 1 + m].float()
            logits = logits[:, : len(extends)]
            if n == 0 or logits.argmax(-1).tolist() != ids[:m]:
                out.append(-1.0)
                continue
            top = logits[:n].topk(2, dim=-1)
            lead = float((top.values[:, 0] - top.values[:, 1]).min())
            if m > n:  # the token after the answer must not extend its last word
                rest = logits[n].masked_fill(~extends, float("-inf"))
                rest[ids[n]] = float("-inf")
                lead = min(lead, float(logits[n, ids[n]] - rest.max()))
            out.append(lead)
    return out


def select(cands: list[dict], ok: dict[str, bool], target: int = TARGET_TOTAL, seed: int = 0):
    """Stable-correct candidates, families thinned to a common cap (seeded), grouped by family
    (families in order of first appearance, candidate order within each)."""
    fams: dict[str, list[dict]] = {}
    for c in cands:
        if c.get("references") and ok[c["id"]]:
            fams.setdefault(family(c["id"]), []).append(c)
    fams = {f: v for f, v in fams.items() if len(v) >= MIN_FAMILY}
    cap = (
        max(v for v in range(1, target + 1) if sum(min(len(x), v) for x in fams.values()) <= target)
        if sum(len(x) for x in fams.values()) > target
        else max(map(len, fams.values()))
    )
    while cap > MAX_SHARE * sum(min(len(x), cap) for x in fams.values()):
        cap -= 1
    rng = random.Random(seed)
    keep = set()
    for _f, v in fams.items():
        picked = v if len(v) <= cap else rng.sample(v, cap)
        keep.update(c["id"] for c in picked)
    order = {f: k for k, f in enumerate(dict.fromkeys(family(c["id"]) for c in cands))}
    return sorted((c for c in cands if c["id"] in keep), key=lambda c: order[family(c["id"])]), cap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", help="JSON file caching generations by prompt text (read if present, then updated)")
    ap.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parents[1] / "harness" / "data" / "prompts.jsonl"),
        help="where to write the prompt set (default: the bundled file)",
    )
    args = ap.parse_args()

    import torch

    from harness.measure.behaviour import prompt_variants
    from harness.measure.generation import generate
    from harness.metrics.text import is_correct
    from harness.models.sources import load_model, load_tokenizer, resolve_model

    torch.set_num_threads(2)
    cands = candidates()
    ref_cands = [c for c in cands if c.get("references")]
    raw = json.loads(Path(args.raw).read_text()) if args.raw and Path(args.raw).exists() else {}
    src = resolve_model("smollm2-135m")
    model, tok = load_model(src.local_dir), load_tokenizer(src.local_dir)
    texts = list(dict.fromkeys(t for c in ref_cands for t in [c["prompt"], *prompt_variants(c["prompt"])]))
    todo = [t for t in texts if t not in raw]
    print(
        f"{len(ref_cands)} reference candidates in {len({family(c['id']) for c in ref_cands})} families; "
        f"{len(texts)} texts with variants, {len(todo)} to generate",
        flush=True,
    )
    t0, chunk = time.time(), 160
    for a in range(0, len(todo), chunk):
        part = todo[a : a + chunk]
        outs, ids = generate(model, tok, part, max_new_tokens=16, batch_size=16, bos="auto", return_ids=True)
        raw.update({t: {"text": o, "ids": i} for t, o, i in zip(part, outs, ids)})
        done, el = a + len(part), time.time() - t0
        print(f"generated {done}/{len(todo)} in {el:.0f}s (eta {el / done * (len(todo) - done):.0f}s)", flush=True)
        if args.raw:
            Path(args.raw).write_text(json.dumps(raw, ensure_ascii=False))
    t_gen = time.time() - t0
    correct = {
        c["id"]: all(is_correct(raw[t]["text"], c["references"]) for t in [c["prompt"], *prompt_variants(c["prompt"])])
        for c in ref_cands
    }
    t1 = time.time()
    items = [(t, c) for c in ref_cands if correct[c["id"]] for t in [c["prompt"], *prompt_variants(c["prompt"])]]
    todo_m = [(t, c) for t, c in items if json.dumps(c["references"]) not in raw[t].setdefault("margin2", {})]
    for a in range(0, len(todo_m), 400):
        part = todo_m[a : a + 400]
        for (t, c), m in zip(part, margins(model, tok, [(t, raw[t]["ids"], c["references"]) for t, c in part])):
            raw[t]["margin2"][json.dumps(c["references"])] = m
        print(f"margins {a + len(part)}/{len(todo_m)} in {time.time() - t1:.0f}s", flush=True)
    if args.raw:
        Path(args.raw).write_text(json.dumps(raw, ensure_ascii=False))
    least: dict[str, float] = {}
    for t, c in items:
        least[c["id"]] = min(least.get(c["id"], float("inf")), raw[t]["margin2"][json.dumps(c["references"])])
    ls = sorted(least.values())
    print(
        "least margins of the correct candidates (quantiles 0, .05, .1, .25, .5): "
        + ", ".join(f"{ls[int(q * (len(ls) - 1))]:.2f}" for q in (0, 0.05, 0.1, 0.25, 0.5)),
        flush=True,
    )
    ok = {c["id"]: correct[c["id"]] and least[c["id"]] >= MIN_MARGIN for c in ref_cands}
    for c in ref_cands:
        if not ok[c["id"]]:
            why = "near-tie {:.2f}".format(least[c["id"]]) if correct[c["id"]] else "wrong"
            print(f"drop {c['id']} ({why}): {raw[c['prompt']]['text'].strip().splitlines()[:1]}")
    kept, cap = select(cands, ok)
    opens = [c for c in cands if not c.get("references")]
    n_cand = Counter(family(c["id"]) for c in ref_cands)
    n_ok = Counter(family(c["id"]) for c in ref_cands if ok[c["id"]])
    n_keep = Counter(family(c["id"]) for c in kept)
    print(f"\nfamily: candidates / stable-correct / kept (cap {cap}, min family {MIN_FAMILY})")
    for f in n_cand:
        print(f"  {f}: {n_cand[f]} / {n_ok[f]} / {n_keep[f]}")
    print(
        f"  total: {len(ref_cands)} / {sum(n_ok.values())} / {len(kept)} in {len(n_keep)} families; "
        f"generation {t_gen:.0f}s for {len(todo)} texts"
    )
    path = Path(args.out)
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in kept + opens), encoding="utf-8")
    print(f"wrote {len(kept)} reference prompts and {len(opens)} open ones to {path}")


if __name__ == "__main__":
    main()
