"""Regenerate the sample inputs in this directory.

    .venv/bin/python sample_data/make_samples.py

Writes reviews.jsonl, reviews.parquet (the same 300 rows) and bad_lines.jsonl.
The output is deterministic: a seeded RNG picks from hand-written building
blocks, so running the script again reproduces the files byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SEED = 20250607
N_REVIEWS = 300
FIRST_DAY = dt.date(2025, 1, 1)
LAST_DAY = dt.date(2026, 10, 31)

# Column order and Arrow types; the Parquet file uses exactly this schema.
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("product", pa.string()),
        ("rating", pa.int64()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("verified_purchase", pa.bool_()),
        ("date", pa.string()),
    ]
)

# --------------------------------------------------------------------------
# Products: how reviewers refer to each one, what they praise, what they hate.
# --------------------------------------------------------------------------

PRODUCTS: dict[str, dict[str, list[str] | str]] = {
    # Kitchen
    "Brewline 1.7L Electric Kettle": {
        "noun": "kettle",
        "context": ["for my morning tea", "for the office kitchen"],
        "pros": [
            "It boils a full jug in about three minutes.",
            "The temperature presets are great for green tea.",
            "It switches off reliably and the base doesn't get hot.",
            "The blue light is a nice touch at 6am.",
        ],
        "cons": [
            "The lid started sticking after a couple of weeks.",
            "It has a plastic smell that still hasn't gone away.",
            "The handle gets uncomfortably warm.",
            "Limescale builds up fast because the filter is flimsy.",
        ],
    },
    "Oakridge Bamboo Cutting Board Set": {
        "noun": "cutting board set",
        "context": ["for a new apartment", "as a housewarming gift"],
        "pros": [
            "The juice groove actually catches everything.",
            "Three sizes cover pretty much every job.",
            "They look nice enough to use as serving boards.",
            "They're easy on my knives.",
        ],
        "cons": [
            "The largest board warped after one wash.",
            "One of them cracked along the glue line.",
            "They're thinner than the photos suggest.",
            "They stain as soon as you cut beets or tomatoes.",
        ],
    },
    "ChefMate 8-Inch Chef's Knife": {
        "noun": "knife",
        "context": ["for everyday cooking", "to replace an old knife"],
        "pros": [
            "It came scary sharp out of the box.",
            "The balance feels right and my wrist doesn't get tired.",
            "It glides through onions and squash alike.",
            "It holds an edge better than my old one.",
        ],
        "cons": [
            "Small rust spots appeared after the first week.",
            "The handle is too small for big hands.",
            "It arrived with a chip near the tip.",
            "The edge dulled within a month of normal use.",
        ],
    },
    "PressPro French Press (1L)": {
        "noun": "french press",
        "context": ["for weekend coffee", "for camping trips"],
        "pros": [
            "The double filter keeps the grounds out of my cup.",
            "The coffee comes out rich and smooth.",
            "It keeps coffee hot for a good half hour.",
            "It's easy to take apart and clean.",
        ],
        "cons": [
            "The plunger wobbles and lets grit through.",
            "The glass is thinner than I expected.",
            "The lid doesn't sit flush.",
            "Fine grounds still end up at the bottom of the mug.",
        ],
    },
    "Crispwave 5.5L Air Fryer": {
        "noun": "air fryer",
        "context": ["for quick weeknight dinners", "for a family of four"],
        "pros": [
            "Fries come out crispy without a drop of oil.",
            "The basket is big enough for a whole chicken.",
            "The basket cleans up in seconds.",
            "The presets take the guesswork out of cooking.",
        ],
        "cons": [
            "The fan is very loud.",
            "The nonstick coating started flaking within two months.",
            "The display is hard to read from an angle.",
            "It smelled like burning plastic for the first few uses.",
        ],
    },
    # Electronics
    "Auralite Pro Wireless Earbuds": {
        "noun": "earbuds",
        "this": "these",
        "context": ["for the gym", "for my commute"],
        "pros": [
            "The noise cancelling is impressive on the train.",
            "Battery life easily gets me through a workday.",
            "They pair instantly with my phone and laptop.",
            "They stay put even when I run.",
        ],
        "cons": [
            "The left bud keeps disconnecting.",
            "The case hinge feels cheap.",
            "The microphone makes me sound like I'm underwater.",
            "They hurt my ears after an hour.",
        ],
    },
    "VoltGo 20000mAh Power Bank": {
        "noun": "power bank",
        "context": ["for travel", "for festivals"],
        "pros": [
            "It charges my phone four times over.",
            "Fast charging works with both my phone and tablet.",
            "It's smaller than I expected for the capacity.",
            "The charge indicator is accurate.",
        ],
        "cons": [
            "It takes forever to recharge itself.",
            "It gets noticeably hot while charging.",
            "It stopped holding a charge after a few months.",
            "The USB-C port is loose.",
        ],
    },
    "Lumen Smart LED Bulb (4-pack)": {
        "noun": "bulbs",
        "this": "these",
        "context": ["for the living room", "to try out smart lighting"],
        "pros": [
            "Setup through the app took five minutes.",
            "The colours are vivid and the whites are warm.",
            "Schedules and voice control work reliably.",
            "They're bright enough to replace 60W bulbs.",
        ],
        "cons": [
            "Two of the four drop off Wi-Fi every few days.",
            "The app wants far too many permissions.",
            "They flicker when dimmed below 20 percent.",
            "One bulb was dead on arrival.",
        ],
    },
    'ClearView 27" 4K Monitor': {
        "noun": "monitor",
        "context": ["for working from home", "for photo editing"],
        "pros": [
            "Text is razor sharp at 4K.",
            "The colours were accurate out of the box.",
            "The stand adjusts in every direction.",
            "USB-C charges my laptop over one cable.",
        ],
        "cons": [
            "There's noticeable backlight bleed in the corners.",
            "It arrived with a dead pixel near the centre.",
            "The built-in speakers are tinny.",
            "The menu buttons are awkward to reach.",
        ],
    },
    "TypeFlow Mechanical Keyboard": {
        "noun": "keyboard",
        "context": ["for programming", "for gaming"],
        "pros": [
            "The switches feel great and aren't too loud.",
            "The build is solid with zero flex.",
            "Hot-swappable switches are a nice bonus.",
            "The backlight is even and not too bright.",
        ],
        "cons": [
            "The space bar rattles.",
            "A few keys started double typing after a month.",
            "The software only runs on Windows.",
            "The keycaps got shiny very quickly.",
        ],
    },
    "PulseFit Fitness Tracker": {
        "noun": "tracker",
        "context": ["to track my runs", "to keep an eye on my sleep"],
        "pros": [
            "The battery lasts about a week.",
            "The heart rate readings match my chest strap.",
            "Sleep tracking is surprisingly detailed.",
            "It's light enough to forget you're wearing it.",
        ],
        "cons": [
            "GPS takes ages to lock on.",
            "The strap gave me a rash.",
            "The step count is wildly off.",
            "The app crashes constantly.",
        ],
    },
    # Outdoor
    "TrailPeak 2-Person Tent": {
        "noun": "tent",
        "context": ["for backpacking", "for a festival weekend"],
        "pros": [
            "It pitches in under ten minutes.",
            "It stayed dry through a night of heavy rain.",
            "It packs down small and light.",
            "There's room for two people and their gear.",
        ],
        "cons": [
            "The zipper snagged on the second trip.",
            "The stakes bent on hard ground.",
            "Condensation builds up inside overnight.",
            "A pole section cracked in moderate wind.",
        ],
    },
    "Summit 40L Hiking Backpack": {
        "noun": "backpack",
        "context": ["for day hikes", "for a week in the mountains"],
        "pros": [
            "The hip belt takes the weight off my shoulders.",
            "There are pockets exactly where you want them.",
            "The rain cover is built in.",
            "The back panel actually breathes.",
        ],
        "cons": [
            "The shoulder straps dig in after a few hours.",
            "A buckle snapped on day one.",
            "The side pockets are too shallow for a water bottle.",
            "The fabric pilled quickly.",
        ],
    },
    "HydroCore Insulated Water Bottle 750ml": {
        "noun": "bottle",
        "context": ["for work", "for hiking"],
        "pros": [
            "Ice is still there after twelve hours in a hot car.",
            "It doesn't sweat at all.",
            "The lid is properly leakproof.",
            "It fits in my car's cup holder.",
        ],
        "cons": [
            "The paint chipped after a single drop.",
            "The lid leaks when tipped over.",
            "It gives water a metallic taste.",
            "The mouth is too narrow for ice cubes.",
        ],
    },
    "EmberLite Camping Stove": {
        "noun": "stove",
        "context": ["for backpacking", "for car camping"],
        "pros": [
            "It boils half a litre in about three minutes.",
            "It folds up to the size of a fist.",
            "The flame control is very fine.",
            "The piezo igniter works every time.",
        ],
        "cons": [
            "The piezo igniter died after two trips.",
            "It's useless in any wind.",
            "The pot supports are wobbly.",
            "It burns through gas quickly.",
        ],
    },
    "Solara Solar Garden Lights (6-pack)": {
        "noun": "garden lights",
        "this": "these",
        "context": ["for the backyard path", "for the patio"],
        "pros": [
            "They stay lit until well after midnight.",
            "They look nice and warm, not harsh blue.",
            "Installation was just pushing them into the ground.",
            "They survived a pretty bad storm.",
        ],
        "cons": [
            "Half of them stopped working within a month.",
            "They barely glow after a cloudy day.",
            "Water gets inside the casing.",
            "The stakes are brittle plastic.",
        ],
    },
    # Books
    "The Lighthouse Keeper's Daughter (Paperback)": {
        "noun": "book",
        "context": ["for my book club", "for a beach holiday"],
        "pros": [
            "The characters feel real and the ending surprised me.",
            "The writing is atmospheric without being slow.",
            "I finished it in two evenings.",
            "The dual timeline is handled beautifully.",
        ],
        "cons": [
            "The middle drags for about a hundred pages.",
            "The twist was obvious by chapter five.",
            "The print is tiny and the pages are thin.",
            "The romance subplot felt forced.",
        ],
    },
    "Practical Sourdough: A Home Baker's Guide": {
        "noun": "book",
        "context": ["to get started with sourdough", "as a gift for my sister"],
        "pros": [
            "The step-by-step photos are really helpful.",
            "My first loaf actually rose.",
            "It explains the why, not just the how.",
            "The troubleshooting chapter alone is worth the price.",
        ],
        "cons": [
            "Several recipes have the wrong hydration numbers.",
            "It assumes you own a lot of equipment.",
            "The measurements are only in cups.",
            "Half the book is the author's life story.",
        ],
    },
    "Python for Busy People, 2nd Edition": {
        "noun": "book",
        "context": ["to learn programming", "for my team at work"],
        "pros": [
            "The examples are short and practical.",
            "The exercises at the end of each chapter are useful.",
            "It covers modern Python, not outdated syntax.",
            "It's clear enough for a total beginner.",
        ],
        "cons": [
            "Several code samples have errors.",
            "The later chapters rush through important topics.",
            "It's too basic if you already know another language.",
            "The Kindle version's code formatting is broken.",
        ],
    },
    "The Quiet Orbit (Hardcover)": {
        "noun": "novel",
        "context": ["for a long flight", "after seeing it recommended online"],
        "pros": [
            "The world building is fantastic.",
            "It's hard science fiction that is still emotional.",
            "The hardcover is beautifully made.",
            "I couldn't put it down.",
        ],
        "cons": [
            "The pacing is glacial.",
            "There are too many characters to keep track of.",
            "The ending just stops.",
            "The dialogue is stiff.",
        ],
    },
    # Toys
    "BrickBuild Space Station Set (742 pcs)": {
        "noun": "set",
        "context": ["for my nephew's birthday", "as a family weekend project"],
        "pros": [
            "The instructions are clear and easy to follow.",
            "The finished model is huge and looks great on a shelf.",
            "It kept my kids busy for a whole weekend.",
            "The pieces click together firmly.",
        ],
        "cons": [
            "Several pieces were missing from the bags.",
            "The stickers are hard to line up.",
            "It's pricey for the piece count.",
            "The pieces don't fit as tightly as the big-name brand.",
        ],
    },
    "Wobbly Llama Stacking Game": {
        "noun": "game",
        "context": ["for family game night", "for a five-year-old"],
        "pros": [
            "The whole family, grandparents included, was laughing.",
            "The rounds are quick, which suits short attention spans.",
            "The wooden pieces feel sturdy.",
            "It's simple enough for young kids to play alone.",
        ],
        "cons": [
            "The paint chips off easily.",
            "It gets boring after a few rounds.",
            "The base is too slippery.",
            "It's smaller than it looks in the pictures.",
        ],
    },
    "RoboPup Coding Robot": {
        "noun": "robot",
        "context": ["for my 9-year-old", "for a school STEM club"],
        "pros": [
            "The block-based coding app is well designed.",
            "My daughter wrote her first program in an hour.",
            "The sensors are responsive.",
            "It teaches real loops and conditions, not just buttons.",
        ],
        "cons": [
            "The battery lasts barely 40 minutes.",
            "The app keeps losing the Bluetooth connection.",
            "The wheels get stuck on carpet.",
            "It's expensive for what it does.",
        ],
    },
    "Pocket Puzzle Cube 3x3": {
        "noun": "cube",
        "context": ["to learn speedcubing", "as a stocking stuffer"],
        "pros": [
            "It turns smoothly right out of the box.",
            "Corner cutting is excellent for the price.",
            "The stickerless colours are bright.",
            "It's much better than the cheap cubes at the supermarket.",
        ],
        "cons": [
            "It pops apart during fast solves.",
            "It feels gritty and too tight.",
            "The colours fade quickly.",
            "It squeaks constantly.",
        ],
    },
    # Home
    "CloudRest Memory Foam Pillow": {
        "noun": "pillow",
        "context": ["for neck pain", "for the guest room"],
        "pros": [
            "My neck pain is gone after a week.",
            "It holds its shape all night.",
            "The cover is soft and washable.",
            "It stays cooler than my old pillow.",
        ],
        "cons": [
            "It's way too firm for side sleepers.",
            "The chemical smell lasted for days.",
            "It's much flatter than advertised.",
            "It sleeps hot.",
        ],
    },
    "Nordvik Wool Throw Blanket": {
        "noun": "blanket",
        "context": ["for the sofa", "for chilly evenings"],
        "pros": [
            "It's warm without being heavy.",
            "The colour is exactly as pictured.",
            "It's soft for wool, not scratchy at all.",
            "It survived the washing machine on the wool setting.",
        ],
        "cons": [
            "It sheds everywhere.",
            "It's itchier than expected.",
            "It shrank in the wash despite following the label.",
            "It's smaller than the listed size.",
        ],
    },
}

# --------------------------------------------------------------------------
# Generic building blocks, keyed by star rating.
# --------------------------------------------------------------------------

OPENERS = {
    5: [
        "Absolutely love {this} {noun}.",
        "Bought this {context} and it has been perfect.",
        "Best {noun} I've bought in years.",
        "This exceeded my expectations.",
        "I was skeptical at first, but {this} {noun} won me over.",
        "Bought it as a gift and ended up getting one for myself too.",
        "Second one I've bought.",
        "Can't fault it.",
    ],
    4: [
        "Very good {noun} overall.",
        "Solid purchase {context}.",
        "Pretty happy with this one.",
        "Does the job well.",
        "Nearly perfect.",
        "Good value for money.",
        "Bought this {context} and I'm mostly impressed.",
    ],
    3: [
        "It's okay.",
        "Mixed feelings about {this} {noun}.",
        "Not bad, not great.",
        "Decent for the price.",
        "Does what it says, mostly.",
        "Bought this {context}; it's fine.",
        "Average {noun}.",
    ],
    2: [
        "Disappointed with {this} {noun}.",
        "Wanted to like this more than I do.",
        "Not worth the money in my opinion.",
        "Expected better given all the good reviews.",
        "Bought this {context} and regret it a little.",
        "Meh.",
    ],
    1: [
        "Do not buy.",
        "Worst {noun} I have ever bought.",
        "Returned it after a week.",
        "Complete waste of money.",
        "Very disappointed.",
        "Bought this {context} and it was a mistake.",
        "Avoid {this} {noun}.",
    ],
}

CLOSERS = {
    5: [
        "Highly recommend.",
        "Would buy again in a heartbeat.",
        "Five stars from me.",
        "Already recommended it to friends.",
        "Worth every penny.",
    ],
    4: [
        "Would recommend.",
        "Worth it for the price.",
        "Would buy again.",
        "Happy overall.",
    ],
    3: [
        "Might keep it, might return it.",
        "Fine if you find it on sale.",
        "Three stars feels fair.",
        "It'll do for now.",
    ],
    2: [
        "Probably won't buy this brand again.",
        "Look elsewhere.",
        "Customer service was slow to reply.",
        "I'll be returning it.",
    ],
    1: [
        "Requesting a refund.",
        "Save your money.",
        "Avoid.",
        "One star because zero isn't an option.",
        "The seller never answered my emails.",
    ],
}

# Short, self-contained reviews that fit any product.
ONE_LINERS = {
    5: ["Does exactly what it says. Five stars.", "Perfect, no complaints.", "Love it!"],
    4: ["Good product, quick delivery.", "Very nice, minor quibbles only."],
    3: ["It's fine. Nothing special.", "Average. Does the job."],
    2: ["Not great. Wouldn't buy again.", "Below average quality."],
    1: ["Broke within a week.", "Junk. Returned it."],
}

DELIVERY = {
    "good": [
        "Arrived a day early and well packaged.",
        "Shipping was fast.",
        "Packaging was minimal and recyclable, which I appreciate.",
    ],
    "bad": [
        "The box was crushed when it arrived.",
        "Delivery took almost three weeks.",
        "It came in a box that had clearly been opened before.",
    ],
}

BUT = ["However,", "But", "That said,", "On the other hand,", "Unfortunately,"]
MINOR = ["Only complaint:", "One small gripe:", "Minor issue:", "If I'm picky,"]
TO_BE_FAIR = ["To be fair,", "On the plus side,", "In fairness,"]

TITLES = {
    5: [
        "Love it",
        "Five stars",
        "Excellent {noun}",
        "Exactly what I needed",
        "Fantastic",
        "Highly recommend",
        "Worth every penny",
        "Great {noun}",
    ],
    4: [
        "Very good",
        "Solid {noun}",
        "Happy with it",
        "Good value",
        "Almost perfect",
        "Does the job well",
    ],
    3: [
        "It's okay",
        "Average",
        "Mixed feelings",
        "Decent",
        "Fine for the price",
        "Could be better",
    ],
    2: ["Disappointing", "Not worth it", "Meh", "Expected more", "Below average"],
    1: ["Do not buy", "Waste of money", "Broke quickly", "Terrible {noun}", "Returned it", "Avoid"],
}

# Real reviewers misspell things; a few reviews get one of these.
TYPOS = [
    ("received", "recieved"),
    ("definitely", "definately"),
    ("a lot", "alot"),
    ("don't", "dont"),
    ("doesn't", "doesnt"),
    ("it's", "its"),
    ("really", "realy"),
    ("because", "becuase"),
    ("the ", "teh "),
    ("than", "then"),
    ("I'm", "im"),
    ("expected", "expcted"),
    ("after", "afer"),
    ("would", "woudl"),
]

# Hand-written reviews that exercise awkward characters and template-like text.
# Template syntax here must reach the model as literal text, never be rendered.
SPECIAL_REVIEWS = [
    (
        "Lumen Smart LED Bulb (4-pack)",
        3,
        "Weird manual",
        "The troubleshooting page literally tells you to type {{ config }} into the app, "
        "which does nothing. Otherwise the bulbs work fine.",
    ),
    (
        "RoboPup Coding Robot",
        2,
        "Buggy app",
        "When I tried to set up a schedule the app showed raw text like "
        "{% if user.name %}Hello{% endif %} on screen. Decent hardware, buggy software.",
    ),
    (
        "TypeFlow Mechanical Keyboard",
        2,
        "Support is useless",
        "Support asked me to paste my settings file, which looks like "
        '{"layout": "ISO", "rgb": true}. Still waiting for a reply two weeks later.',
    ),
    (
        "Crispwave 5.5L Air Fryer",
        2,
        'Not "whisper quiet"',
        'The box says "whisper quiet" but on the "max" setting it sounds like a jet '
        "engine. Food is good though.",
    ),
    (
        "PressPro French Press (1L)",
        4,
        "Très bien",
        "Makes a lovely café au lait for two — just like the little café near my old flat. "
        "The plunger is a bit stiff.",
    ),
    (
        "CloudRest Memory Foam Pillow",
        5,
        "Sehr gut!",
        "Bought this for my grandfather Jürgen in München and he says it's the best pillow "
        "he's ever had. Sehr gut!",
    ),
    (
        "BrickBuild Space Station Set (742 pcs)",
        5,
        "Kids love it 😍",
        "Kids love it 😍😍 Took the whole afternoon to build and nobody fought over pieces. "
        "10/10 🚀",
    ),
    (
        "RoboPup Coding Robot",
        1,
        "Broke on day two 😡",
        "Broke on day two 😡 The tail snapped off and the app won't connect anymore. 👎",
    ),
    (
        "TrailPeak 2-Person Tent",
        4,
        "Good in the rain",
        "Took it up to the Peñas Blancas trail for a long weekend. Held up fine in the rain, "
        "though the footprint is sold separately.",
    ),
    (
        "VoltGo 20000mAh Power Bank",
        3,
        "It's “fine”",
        "It's “fine”… I guess. Battery lasts about half of what's advertised.",
    ),
    (
        "Nordvik Wool Throw Blanket",
        4,
        "Pros and cons",
        "Pros: light, warm, lovely colour.\nCons: sheds a bit after washing.",
    ),
    (
        "RoboPup Coding Robot",
        2,
        "Manual is out of date",
        "The manual says to open C:\\Users\\Public\\RoboPup\\config.ini but that folder "
        "doesn't exist on my laptop. Had to find the answer on a forum.",
    ),
    (
        "Brewline 1.7L Electric Kettle",
        5,
        "Great gift",
        "Gift for my friend in Tokyo — she says とても良い (very good)! Boils fast and looks "
        "lovely on the counter.",
    ),
    (
        "HydroCore Insulated Water Bottle 750ml",
        1,
        "LEAKS",
        "DO NOT BUY!!! LEAKED ALL OVER MY BAG AND MY LAPTOP.",
    ),
    ("Pocket Puzzle Cube 3x3", 3, "ok", "ok"),
    ("Wobbly Llama Stacking Game", 5, "Great.", "Great."),
    (
        "EmberLite Camping Stove",
        5,
        "Tiny and powerful",
        "<b>Great</b> little stove, packs down tiny. Paid $34.99 and it's worth 100% of that.",
    ),
    (
        "Summit 40L Hiking Backpack",
        2,
        "Which size?",
        "The title says {size} and the listing never says which size actually ships. "
        "Mine is too small for my back.",
    ),
    (
        "Practical Sourdough: A Home Baker's Guide",
        4,
        "Crème de la crème",
        "The crème de la crème of bread books, although the brioche recipe needs a tweak. "
        "My naïve first attempt turned into a brick.",
    ),
    (
        'ClearView 27" 4K Monitor',
        4,
        'Sharp 27" screen',
        'Great 27" panel for the money. The stand is a bit wobbly at full height.',
    ),
]


def decap(sentence: str) -> str:
    """Lowercase a sentence's first letter so it can follow 'But' or 'Only complaint:'."""
    first = sentence.split(" ", 1)[0]
    if first in {"I", "I'm", "I've"} or (len(first) > 1 and first.isupper()) or first[0].isdigit():
        return sentence
    return sentence[0].lower() + sentence[1:]


def add_typo(text: str, rng: random.Random) -> str:
    """Introduce one realistic misspelling, or swap two adjacent letters."""
    candidates = [(right, wrong) for right, wrong in TYPOS if right in text]
    if candidates and rng.random() < 0.7:
        right, wrong = rng.choice(candidates)
        return text.replace(right, wrong, 1)
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) > 5 and w.isalpha()]
    if not long_words:
        return text
    i = rng.choice(long_words)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)


def compose(product: str, rating: int, rng: random.Random) -> tuple[str, str]:
    """Return a (title, text) pair whose tone matches the star rating."""
    info = PRODUCTS[product]
    noun = str(info["noun"])
    pros, cons = list(info["pros"]), list(info["cons"])
    rng.shuffle(pros)
    rng.shuffle(cons)
    fill = {"noun": noun, "this": info.get("this", "this"), "context": rng.choice(info["context"])}
    title = rng.choice(TITLES[rating]).format(**fill)
    title = title[0].upper() + title[1:]

    if rng.random() < 0.07:
        return title, rng.choice(ONE_LINERS[rating])

    parts = [rng.choice(OPENERS[rating]).format(**fill)]
    if rating == 5:
        parts += pros[: rng.choice([1, 2])]
    elif rating == 4:
        parts.append(pros[0])
        if rng.random() < 0.7:
            parts.append(f"{rng.choice(MINOR)} {decap(cons[0])}")
    elif rating == 3:
        parts += [pros[0], f"{rng.choice(BUT)} {decap(cons[0])}"]
    elif rating == 2:
        parts.append(cons[0])
        if rng.random() < 0.5:
            parts.append(f"{rng.choice(TO_BE_FAIR)} {decap(pros[0])}")
    else:
        parts += cons[: rng.choice([1, 2])]

    if rng.random() < 0.15:
        parts.append(rng.choice(DELIVERY["good" if rating >= 4 else "bad"]))
    if len(parts) < 4 and rng.random() < 0.55:
        parts.append(rng.choice(CLOSERS[rating]))
    text = " ".join(parts[:4])

    if rng.random() < 0.10:
        text = add_typo(text, rng)
    if rng.random() < 0.04:
        text = text.lower()
    elif rng.random() < 0.04:
        text = text.rstrip(".")
    return title, text


def random_date(rng: random.Random) -> str:
    span = (LAST_DAY - FIRST_DAY).days
    return (FIRST_DAY + dt.timedelta(days=rng.randint(0, span))).isoformat()


def make_reviews(n: int, rng: random.Random, specials: list | tuple = ()) -> list[dict]:
    """n reviews (specials first) with unique texts, ordered by date, ids r-0001 onwards."""
    rows: list[dict] = []
    seen: set[str] = set()
    for product, rating, title, text in specials:
        seen.add(text)
        rows.append({"product": product, "rating": rating, "title": title, "text": text})
    products = list(PRODUCTS)
    ratings, weights = [5, 4, 3, 2, 1], [34, 24, 15, 10, 17]
    while len(rows) < n:
        product = rng.choice(products)
        rating = rng.choices(ratings, weights)[0]
        title, text = compose(product, rating, rng)
        if text in seen:
            continue
        seen.add(text)
        rows.append({"product": product, "rating": rating, "title": title, "text": text})
    for row in rows:
        row["verified_purchase"] = rng.random() < 0.82
        row["date"] = random_date(rng)
    rows.sort(key=lambda r: (r["date"], r["product"], r["text"]))
    return [
        {
            "id": f"r-{i:04d}",
            "product": r["product"],
            "rating": r["rating"],
            "title": r["title"],
            "text": r["text"],
            "verified_purchase": r["verified_purchase"],
            "date": r["date"],
        }
        for i, r in enumerate(rows, start=1)
    ]


def dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def make_bad_lines(rng: random.Random) -> list[bytes]:
    """About 20 lines: good rows (id b-NNNN = line NNNN) mixed with broken ones.

    The line numbers below are documented in README.md; keep them in sync.
    """
    pool = make_reviews(20, rng)  # ordinary reviews only; line N takes pool[N - 1]

    def row(line: int, **overrides: object) -> dict:
        base = dict(pool[line - 1])
        base["id"] = f"b-{line:04d}"
        base.update(overrides)
        return base

    def line(n: int) -> bytes:
        return dumps(row(n)).encode()

    truncated = dumps(row(6))
    bad_utf8 = dumps(
        row(
            12,
            product="PressPro French Press (1L)",
            rating=5,
            title="Perfect every morning",
            text="Makes a perfect caf@@ au lait every morning.",
        )
    ).encode()
    no_text = {k: v for k, v in row(16).items() if k != "text"}

    return [
        line(1),
        line(2),
        line(3),
        b"product: kettle, rating: 5, text: great kettle",  # 4: not JSON
        line(5),
        truncated[: len(truncated) // 2].encode(),  # 6: truncated object
        line(7),
        dumps(list(row(8).values())).encode(),  # 8: JSON array, not an object
        line(9),
        b'"just a string, not an object"',  # 10: bare JSON string
        line(11),
        bad_utf8.replace(b"@@", b"\xff\xfe"),  # 12: invalid UTF-8 bytes
        line(13),
        dumps(row(14, id="b-0002")).encode(),  # 14: duplicates line 2's id
        line(15),
        dumps(no_text).encode(),  # 16: no "text" field
        b"",  # 17: empty line
        line(18),
        line(19),
        line(20),
    ]


def main() -> None:
    rng = random.Random(SEED)
    reviews = make_reviews(N_REVIEWS, rng, SPECIAL_REVIEWS)

    with open(HERE / "reviews.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for review in reviews:
            f.write(dumps(review) + "\n")

    table = pa.Table.from_pylist(reviews, schema=SCHEMA)
    pq.write_table(table, HERE / "reviews.parquet")

    bad = make_bad_lines(random.Random(SEED + 1))
    (HERE / "bad_lines.jsonl").write_bytes(b"\n".join(bad) + b"\n")

    print(f"wrote {len(reviews)} reviews and {len(bad)} bad_lines rows to {HERE}")


if __name__ == "__main__":
    main()
