import json, sys, numpy as np, skimage.data as d
from wsris.domain import judge, SHAPES_DOMAIN
from wsris.data.shapes import ShapesRef
PHOTOS = ["astronaut","brick","camera","cat","cell","chelsea","clock","coffee","coins","grass","gravel",
          "hubble_deep_field","immunohistochemistry","microaneurysms","moon","page","retina","rocket","text"]
def rgb(a):
    a = np.asarray(a)
    if a.ndim == 2: a = np.stack([a]*3, -1)
    return np.ascontiguousarray(a[..., :3]).astype(np.uint8)
n = int(sys.argv[1]); res = {}
ph = {p: judge(rgb(getattr(d, p)()), SHAPES_DOMAIN) for p in PHOTOS}
res["photos_flagged"] = sum(not j.in_domain for j in ph.values()); res["photos"] = len(PHOTOS)
res["photo_max_score"] = max(j.score for j in ph.values())
for p, j in ph.items(): print(p, j.in_domain, round(j.score, 3))
for split, var in (("val", "default"), ("drawings", "default"), ("train", "drawn")):
    ds = ShapesRef(split, variant=var)
    js = [judge(ds[i].image, SHAPES_DOMAIN) for i in range(n)]
    flagged = [i for i, j in enumerate(js) if not j.in_domain]
    res[f"{split}-{var}"] = {"n": n, "flagged": len(flagged), "rate": len(flagged) / n, "indices": flagged,
                             "min_score": min(j.score for j in js)}
print(json.dumps({k: v for k, v in res.items()}, indent=0))
json.dump(res, open(sys.argv[2], "w"), indent=1)
