"""The checks of a submission script, one registry: ``registry`` declares each check (policy key, default action,
reason); ``core`` holds what they share; ``placeholders``, ``options``, ``scratch``, ``layout`` (normalisation
rules) and ``fit`` (the job against the partition limits) implement them; ``engine`` runs them."""
