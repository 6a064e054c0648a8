"""`Text`: the string type of every input (body fields, query and path parameters).

PostgreSQL stores no NUL character, and neither database (nor a password hash) takes a lone
surrogate such as JSON's `"\\ud800"`: both are bad input, refused before any query is made.
A pattern, not a validator function, so that the length and strip rules a field adds stay in
pydantic's own string check (a function in between would run them after it, unstripped);
matching it needs real Unicode, so a lone surrogate fails as `string_unicode`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]
