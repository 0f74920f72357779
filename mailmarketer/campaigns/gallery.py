"""Starting points for a new campaign: four kinds of message a business sends most, written
well enough to send after filling in the blanks ("Start from: ..." on the new campaign page).

A starter only fills the new campaign's form (subject, format, body); nothing is saved until the
marketer saves the draft, so the usual checks apply to it as to anything typed. Each one renders
in the built-in layout (or the workspace's default) through the same path as sending, uses
`default(...)` wherever a subscriber's value may be missing, and has no images of its own, so
it works before anything is uploaded. Tests render each through the preview and build it into
a message read back with the strict MIME parser (campaigns/tests/test_gallery.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Starter:
    key: str
    label: str
    description: str
    name: str
    subject: str
    body_format: str  # Campaign.Format values
    body: str

    def initial(self) -> dict:
        """The new campaign form's initial values."""
        return {
            "name": self.name,
            "subject": self.subject,
            "body_format": self.body_format,
            "body": self.body,
        }


NEWSLETTER = Starter(
    key="newsletter",
    label="Newsletter",
    description="A greeting, a lead story and a few short items with links.",
    name="Newsletter",
    subject="What's new at {{ workspace.name }}",
    body_format="markdown",
    body="""\
Hello {{ subscriber.first_name | default("there") }},

Here is what happened at {{ workspace.name }} this month.

## The big story

Two or three sentences about the one thing you most want people to read, and why it matters
to them.

[Read the whole story](https://example.com/story)

## In brief

- **A new feature**: one line on what it does. [Details](https://example.com/feature)
- **An event**: when and where. [Sign up](https://example.com/event)
- **From the blog**: a title worth clicking. [Read it](https://example.com/blog)

## One more thing

A tip, a quote from a customer, or a question for your readers. Replies to this email reach
us.

Until next time,
{{ workspace.sender_name }}
""",
)

ANNOUNCEMENT = Starter(
    key="announcement",
    label="Announcement",
    description="One piece of news, what it means, and one button to act on it.",
    name="Announcement",
    subject="Introducing something new from {{ workspace.name }}",
    body_format="html",
    body="""\
<h1>Say what is new in one line</h1>
<p>Hello {{ subscriber.first_name | default("there") }},</p>
<p>One paragraph on what you are announcing and who it is for. Keep it short: the button below
does the rest.</p>
<table role="presentation" cellpadding="0" cellspacing="0" border="0">
<tr><td style="border-radius: 6px; background-color: #1d4fd8;">
<a href="https://example.com/new"
 style="display: inline-block; padding: 12px 24px; color: #ffffff; font-weight: bold;
 text-decoration: none;">See what is new</a>
</td></tr>
</table>
<h2>What changes for you</h2>
<ul>
<li>The first benefit, in the reader's words.</li>
<li>The second benefit.</li>
<li>When it is available, and what it costs, if anything.</li>
</ul>
<p>Questions? Reply to this email and a person will answer.</p>
<p>{{ workspace.sender_name }}</p>
""",
)

LETTER = Starter(
    key="letter",
    label="Plain personal letter",
    description="A short note that reads like an email from a person, not a brochure.",
    name="Personal letter",
    subject="A quick note, {{ subscriber.first_name | default('friend') }}",
    body_format="markdown",
    body="""\
Hi {{ subscriber.first_name | default("there") }},

I wanted to write to you personally about one thing.

Say it plainly, in a few short paragraphs, as you would to a customer you know. No headings,
no pictures: a letter is read to the end when it is short.

If you have a minute, hit reply and tell me what you think. I read every answer.

Thank you,
{{ workspace.sender_name }}
""",
)

EVENT = Starter(
    key="event",
    label="Event invitation",
    description="What, when, where, why come, and a button to register.",
    name="Event invitation",
    subject="You're invited: the event's name",
    body_format="html",
    body="""\
<h1>You're invited: the event's name</h1>
<p>Hello {{ subscriber.first_name | default("there") }},</p>
<p>One sentence on what the event is and why it is worth the reader's time.</p>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">
<tr><th scope="row" align="left">When</th><td>Thursday, 4 March, 17:00 to 18:30</td></tr>
<tr><th scope="row" align="left">Where</th><td>Online, or the address of the venue</td></tr>
<tr><th scope="row" align="left">Cost</th><td>Free</td></tr>
</table>
<h2>What you will get out of it</h2>
<ul>
<li>The first thing attendees learn or take home.</li>
<li>Who speaks, and why they are worth hearing.</li>
<li>Time for questions.</li>
</ul>
<table role="presentation" cellpadding="0" cellspacing="0" border="0">
<tr><td style="border-radius: 6px; background-color: #1d4fd8;">
<a href="https://example.com/register"
 style="display: inline-block; padding: 12px 24px; color: #ffffff; font-weight: bold;
 text-decoration: none;">Register now</a>
</td></tr>
</table>
<p>Seats are limited. We look forward to seeing you,<br>{{ workspace.sender_name }}</p>
""",
)

STARTERS: tuple[Starter, ...] = (NEWSLETTER, ANNOUNCEMENT, LETTER, EVENT)
_BY_KEY = {starter.key: starter for starter in STARTERS}


def get_starter(key: str) -> Starter | None:
    return _BY_KEY.get(key)
