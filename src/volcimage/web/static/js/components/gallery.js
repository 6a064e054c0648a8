// Alpine.data("gallery"): the middle panel, the tasks of the gallery view (stores/tasks.js) as
// cards, or examples to start from while there are none.
import { cards } from "../cards.js";
import { signal } from "../stores/ui.js";

const EXAMPLES = {
  "zh-CN": ["清晨薄雾中的江南水乡，水墨风格", "一只戴着宇航员头盔的橘猫，电影感光影", "赛博朋克城市夜景，霓虹灯倒映在雨后的街道"],
  en: ["A misty water town at dawn, ink wash painting", "An orange cat in an astronaut helmet, cinematic light", "A cyberpunk street at night, neon reflected in rain"],
};

export function gallery() {
  return {
    ...cards,
    examples() {
      return EXAMPLES[this.$store.ui.lang] || EXAMPLES.en;
    },
    // the parameters panel fills its form from them
    useExample(text) {
      signal("use-example", text);
    },
    remix(task) {
      signal("remix", task);
    },
  };
}
