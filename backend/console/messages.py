"""Messages of the services that the console shows often, marked so that the catalogues carry
their translations (an error page shows ``_(message)``; an unknown one stays in English)."""

from backend.console import N_

__all__ = ("SHOWN_MESSAGES",)

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
)
