"""Write the sample data of the docs: clients.csv (5,000 clients) and cases.csv (2,500 cases linked to them).

Deterministic (a fixed seed): running it again rewrites the same files.
Everything in them is made up: names are drawn from common first and last
names, e-mail addresses use example.com, phone numbers use the 555-01xx
range that is reserved for fiction, and every record's external_source is
"sample".

Client ids are given by the server, so cases.csv links to the ids the clients
get when clients.csv is imported first into an empty emulator (1 to 5,000):

    kayse emulator --port 8400 --api-key demo-key        # in one terminal
    kayse --base-url http://127.0.0.1:8400 --api-key demo-key import clients docs/examples/clients.csv
    kayse --base-url http://127.0.0.1:8400 --api-key demo-key import cases docs/examples/cases.csv

Run: python docs/examples/make_samples.py
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path

SEED = 20240115
CLIENTS = 5_000
CASES = 2_500
HERE = Path(__file__).resolve().parent

FIRST_NAMES = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Lisa",
    "Daniel",
    "Nancy",
    "Matthew",
    "Betty",
    "Anthony",
    "Sandra",
    "Mark",
    "Margaret",
    "Donald",
    "Ashley",
    "Steven",
    "Kimberly",
    "Andrew",
    "Emily",
    "Paul",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Timothy",
    "Stephanie",
    "Ronald",
    "Rebecca",
    "Jason",
    "Sharon",
    "Edward",
    "Laura",
    "Jeffrey",
    "Cynthia",
    "Ryan",
    "Amy",
    "Jacob",
    "Kathleen",
    "Gary",
    "Angela",
    "Nicholas",
    "Shirley",
    "Eric",
    "Brenda",
    "Jonathan",
    "Emma",
    "Larry",
    "Anna",
    "Justin",
    "Pamela",
    "Scott",
    "Nicole",
    "Brandon",
    "Samantha",
    "Benjamin",
    "Katherine",
    "Samuel",
    "Christine",
    "Gregory",
    "Debra",
    "Alexander",
    "Rachel",
    "Patrick",
    "Carolyn",
    "Frank",
    "Janet",
    "Raymond",
    "Maria",
    "Jack",
    "Olivia",
    "Dennis",
    "Heather",
    "Jerry",
    "Helen",
    "Tyler",
    "Catherine",
    "Aaron",
    "Diane",
    "Jose",
    "Julie",
    "Adam",
    "Victoria",
    "Nathan",
    "Joyce",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Gomez",
    "Phillips",
    "Evans",
    "Turner",
    "Diaz",
    "Parker",
    "Cruz",
    "Edwards",
    "Collins",
    "Reyes",
    "Stewart",
    "Morris",
    "Morales",
    "Murphy",
    "Cook",
    "Rogers",
    "Gutierrez",
    "Ortiz",
    "Morgan",
    "Cooper",
    "Peterson",
    "Bailey",
    "Reed",
    "Kelly",
    "Howard",
    "Ramos",
    "Kim",
    "Cox",
    "Ward",
]
PLACES = (
    ("New York", "NY", "100"),
    ("Los Angeles", "CA", "900"),
    ("Chicago", "IL", "606"),
    ("Houston", "TX", "770"),
    ("Phoenix", "AZ", "850"),
    ("Philadelphia", "PA", "191"),
    ("San Antonio", "TX", "782"),
    ("San Diego", "CA", "921"),
    ("Dallas", "TX", "752"),
    ("Jacksonville", "FL", "322"),
    ("Columbus", "OH", "432"),
    ("Charlotte", "NC", "282"),
    ("Seattle", "WA", "981"),
    ("Denver", "CO", "802"),
    ("Boston", "MA", "021"),
    ("Nashville", "TN", "372"),
    ("Portland", "OR", "972"),
    ("Atlanta", "GA", "303"),
)
STREETS = [
    "Main",
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Sunset",
    "Willow",
    "Church",
    "River",
]
STREET_KINDS = ("St", "Ave", "Rd", "Blvd", "Ln", "Dr")
CASE_TYPES = ("personal injury", "civil", "family", "employment", "mass tort", "property")
STATUSES = ("active", "active", "active", "pending", "closed")
COURTS = ("Superior Court", "District Court", "Circuit Court", "County Court")

CLIENT_COLUMNS = [
    "external_source",
    "external_source_id",
    "first_name",
    "last_name",
    "email",
    "mobile",
    "gender",
    "date_of_birth",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "meta",
]
CASE_COLUMNS = [
    "case_number",
    "external_source",
    "external_source_id",
    "name",
    "type",
    "status",
    "court_name",
    "jurisdiction",
    "description",
    "is_obo",
    "created_date",
    "court_date",
    "client_ids",
]


def _date(rng: random.Random, start: dt.date, end: dt.date) -> str:
    return (start + dt.timedelta(days=rng.randrange((end - start).days))).isoformat()


def clients(rng: random.Random) -> list[dict[str, str]]:
    """The client rows, as CSV cells."""
    rows: list[dict[str, str]] = []
    for number in range(1, CLIENTS + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, state, zip_prefix = rng.choice(PLACES)
        rows.append(
            {
                "external_source": "sample",
                "external_source_id": f"sample-client-{number:05d}",
                "first_name": first,
                "last_name": last,
                # A few clients have no e-mail or mobile: empty cells are "not given".
                "email": "" if rng.random() < 0.08 else f"{first}.{last}.{number}@example.com".lower(),
                "mobile": "" if rng.random() < 0.1 else f"+1{rng.randrange(200, 999)}55501{rng.randrange(100):02d}",
                "gender": rng.choice(("female", "male", "")),
                "date_of_birth": _date(rng, dt.date(1940, 1, 1), dt.date(2004, 12, 31)),
                "address_line1": f"{rng.randrange(1, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}",
                "address_line2": f"Apt {rng.randrange(1, 40)}{rng.choice('ABCD')}" if rng.random() < 0.2 else "",
                "city": city,
                "state": state,
                "postal_code": f"{zip_prefix}{rng.randrange(100):02d}",
                "meta": json.dumps({"source": "sample data", "referral": rng.choice(("web", "phone", "partner"))}),
            }
        )
    return rows


def cases(rng: random.Random) -> list[dict[str, str]]:
    """The case rows: each links one to three of the clients (ids 1 to 5,000)."""
    rows: list[dict[str, str]] = []
    for number in range(1, CASES + 1):
        kind = rng.choice(CASE_TYPES)
        city, state, _ = rng.choice(PLACES)
        clients = sorted(rng.sample(range(1, CLIENTS + 1), rng.choice((1, 1, 1, 2, 3))))
        opened = _date(rng, dt.date(2019, 1, 1), dt.date(2024, 6, 30))
        rows.append(
            {
                "case_number": f"SMP-{opened[:4]}-{number:05d}",
                "external_source": "sample",
                "external_source_id": f"sample-case-{number:05d}",
                "name": f"{rng.choice(LAST_NAMES)} v. {rng.choice(LAST_NAMES)}",
                "type": kind,
                "status": rng.choice(STATUSES),
                "court_name": f"{city} {rng.choice(COURTS)}",
                "jurisdiction": state,
                "description": f"Sample {kind} matter",
                "is_obo": "true" if rng.random() < 0.05 else "false",
                "created_date": opened,
                "court_date": _date(rng, dt.date(2024, 7, 1), dt.date(2026, 12, 31)) if rng.random() < 0.6 else "",
                "client_ids": ";".join(str(c) for c in clients),
            }
        )
    return rows


def write(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    """Write ``rows`` as CSV with a header row and Unix line ends."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(out_dir: Path = HERE) -> None:
    """Write both files into ``out_dir`` (default: beside this script)."""
    rng = random.Random(SEED)
    write(out_dir / "clients.csv", CLIENT_COLUMNS, clients(rng))
    write(out_dir / "cases.csv", CASE_COLUMNS, cases(rng))


if __name__ == "__main__":
    main()
