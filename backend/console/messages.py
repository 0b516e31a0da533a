"""Messages of the services that the console shows, marked so that the catalogues carry their
translations. An error shows its message translated when the catalogue has it; otherwise, in
another language than English, the translated text for its stable code (``BY_CODE``: a message
built with the request's values, e.g. naming a state, has no catalogue entry of its own); else
the English message as it came."""

from backend.console import N_

__all__ = ("BY_CODE", "SHOWN_MESSAGES")

SHOWN_MESSAGES = (
    N_("Wrong username or password."),
    N_("This account is disabled."),
    N_("This role does not use the web console; sign in on the phone app."),
    N_("This form has expired or did not come from the console; reload the page and try again."),
    N_("Too many failed logins for this account; wait before trying again."),
    N_("Too many login attempts from this address; wait before trying again."),
    N_("Enter your username and password."),
    N_("Your role may not do this."),
    N_("No such work order."),
    N_("No such page."),
    N_("Choose the household."),
    N_("Choose a technician."),
    N_("Fill in the description."),
    N_("Fill in the reason."),
    N_("Orders are assigned to active technicians or inspectors."),
    N_("Some of the form's fields are missing or malformed."),
    N_("A redo request is due in the future."),
    N_("A redo request of this item is still open."),
    N_("No such document of this order: push it first."),
    N_("No such measurement of this order: push it first."),
    N_("No such household."),
    N_("No such review item."),
    N_("No such team."),
    N_("No such user."),
    N_("No such revisit."),
    N_("Only the order's own team's supervisor decides on it."),
    N_("Sign in to the console."),
    N_("Supervisors see the figures of their own team."),
    N_("The console session has expired; sign in again."),
    N_("The order has nobody to redo the work."),
    N_("The order was cancelled: nothing about it can be redone."),
    N_("This console sign-in has been revoked."),
    N_("This role does not use the web console."),
    N_("This session has ended; sign in again."),
    N_("Unknown language."),
    N_("received_at is in the future."),
    N_("received_at is more than 31 days ago."),
    N_("until is before since."),
    N_("Revisits are given to technicians or inspectors."),
    N_("This revisit is already done."),
)

BY_CODE = {
    "illegal_transition": N_(
        "The order's state does not allow this now; reload the page to see where it stands."
    ),
    "review_decided": N_("This item has been decided already; reload the page."),
    "invalid_input": N_("Some of the form's fields are missing or malformed."),
    "not_found": N_("No such page."),
    "forbidden": N_("Your role may not do this."),
    "not_your_team": N_("Only the order's own team's supervisor decides on it."),
    "text_with_nul": N_("Some of the form's fields are missing or malformed."),
    "photos_missing": N_("The order still lacks photos its kind requires."),
}
