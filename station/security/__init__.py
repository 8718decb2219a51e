"""Who may do what at the station, what was released, and an audit trail nobody can quietly edit."""
