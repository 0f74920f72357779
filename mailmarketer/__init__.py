"""Mail Marketer: a self-hosted email-marketing platform.

Domain packages (see DESIGN.md section 4), imports going one way, down this list:
accounts -> audience -> signup -> campaigns -> delivery -> tracking -> api/web; all may use lib.
"""
