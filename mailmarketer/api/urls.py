from ninja import NinjaAPI

api = NinjaAPI(title="Mail Marketer API", version="1", urls_namespace="api")
