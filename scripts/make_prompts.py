"""Write harness/data/prompts.jsonl: project-written prompt candidates, keeping those with
references only where the default model's baseline answers them correctly (greedy).

Run once when the prompt families change: python scripts/make_prompts.py
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def candidates() -> list[dict]:
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
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white", "pink", "brown"]
    for i in range(16):
        codes = {c: rng.randint(10, 99) for c in colours}
        filler = ("The codes below open the lockers in the sports hall. Keep them safe and do not "
                  "share them with anyone outside the team. ")
        table = "\n".join(f"The {c} locker code is {n}." for c, n in codes.items())
        ask = colours[rng.randrange(len(colours))]
        prompt = f"{filler}\n{table}\n{filler}\nQuestion: What is the {ask} locker code?\nAnswer: The {ask} locker code is"
        out.append({"id": f"recall-{i:02d}", "prompt": prompt, "references": [str(codes[ask])]})
    for i, p in enumerate(OPEN):
        out.append({"id": f"open-{i:02d}", "prompt": p, "long": i < 12})
    return out


def main() -> None:
    import torch

    from harness.generation import generate, is_correct
    from harness.models import load_model, load_tokenizer, resolve_model

    torch.set_num_threads(1)
    src = resolve_model("smollm2-135m")
    model, tok = load_model(src.local_dir), load_tokenizer(src.local_dir)
    cands = candidates()
    conts = generate(model, tok, [c["prompt"] for c in cands], max_new_tokens=16, batch_size=16)
    keep = []
    for c, text in zip(cands, conts):
        if not c.get("references") or is_correct(text, c["references"]):
            keep.append(c)
        else:
            print(f"drop {c['id']}: {text.splitlines()[0] if text.strip() else text!r}")
    n_ref = sum(1 for c in keep if c.get("references"))
    print(f"kept {len(keep)} of {len(cands)}; {n_ref} with references")
    path = Path(__file__).resolve().parents[1] / "harness" / "data" / "prompts.jsonl"
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in keep), encoding="utf-8")


if __name__ == "__main__":
    main()
